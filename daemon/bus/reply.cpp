#include "bus/reply.hpp"

#include <utility>

namespace mfa {

SharedMessage share_message(BusMessagePtr m) {
  return SharedMessage(m.release(), [](sd_bus_message* p) { sd_bus_message_unref(p); });
}

Outcome Outcome::of_text(SmsMessage text) {
  Outcome o;
  o.text = std::move(text);
  return o;
}

Outcome method_return(sd_bus_message* call, const Append& append, Secrecy secrecy) {
  Outcome o;
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_return(call, &raw);
  BusMessagePtr reply(raw);
  if (r >= 0 && secrecy == Secrecy::kSensitive)
    r = sd_bus_message_sensitive(reply.get());
  if (r >= 0 && append)
    r = append(reply.get());
  if (r < 0)
    o.failed = r;
  else
    o.reply = std::move(reply);
  return o;
}

Outcome error_reply(sd_bus_message* call, const Error& error) {
  Outcome o;
  o.refused = error.code;
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_errorf(call, &raw, errc_dbus_name(error.code), "%s",
                                           error.message.c_str());
  if (r < 0)
    o.failed = r;
  else
    o.reply.reset(raw);
  return o;
}

Outcome reply_to(sd_bus_message* call, const Status& status) {
  if (!status.ok())
    return error_reply(call, status.error());
  return method_return(call);
}

int append_string(sd_bus_message* m, const std::string& s) {
  return sd_bus_message_append(m, "s", s.c_str());
}

int append_strings(sd_bus_message* m, const std::vector<std::string>& strings) {
  return append_array(m, "s", strings, append_string);
}

}  // namespace mfa
