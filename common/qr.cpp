#include "common/qr.hpp"

#include <qrencode.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace mfa {

namespace {

constexpr int kQuietZone = 4;  // ISO/IEC 18004 §7.3.7: at least 4 modules
// Version 40 at level M holds 2331 bytes; an otpauth URI is a few hundred.
constexpr size_t kMaxQrInput = 2048;

struct QrFree {
  void operator()(QRcode* q) const { QRcode_free(q); }
};
using QrPtr = std::unique_ptr<QRcode, QrFree>;

// The module grid with the quiet zone around it; true = dark.
struct Matrix {
  int width = 0;
  std::vector<bool> dark;
  bool at(int x, int y) const {
    if (x < 0 || y < 0 || x >= width || y >= width)
      return false;
    return dark[static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)];
  }
};

Result<Matrix> encode(std::string_view text) {
  if (text.empty())
    return make_error(Errc::kInvalidArgument, "nothing to encode as a QR code");
  if (text.size() > kMaxQrInput)
    return make_error(Errc::kInvalidArgument, "text too long for a QR code");
  QrPtr qr(QRcode_encodeData(static_cast<int>(text.size()),
                             reinterpret_cast<const unsigned char*>(text.data()), 0, QR_ECLEVEL_M));
  if (!qr) {
    if (errno == ERANGE)
      return make_error(Errc::kInvalidArgument, "text too long for a QR code");
    return make_error(Errc::kInternal, "QR encoding failed");
  }
  Matrix m;
  m.width = qr->width + 2 * kQuietZone;
  m.dark.assign(static_cast<size_t>(m.width) * static_cast<size_t>(m.width), false);
  for (int y = 0; y < qr->width; ++y)
    for (int x = 0; x < qr->width; ++x)
      m.dark[static_cast<size_t>(y + kQuietZone) * static_cast<size_t>(m.width) +
             static_cast<size_t>(x + kQuietZone)] = qr->data[y * qr->width + x] & 1;
  return m;
}

}  // namespace

Result<std::string> qr_utf8(std::string_view text) {
  MFA_TRY(m, encode(text));
  std::string out;
  // Two module rows per text line. Light modules are drawn (in the terminal's foreground), dark
  // ones left blank; an odd last row gets a light lower half, which only widens the quiet zone.
  for (int y = 0; y < m.width; y += 2) {
    for (int x = 0; x < m.width; ++x) {
      const bool top = m.at(x, y);
      const bool bottom = y + 1 < m.width ? m.at(x, y + 1) : false;
      if (!top && !bottom)
        out += "\u2588";  // █
      else if (!top)
        out += "\u2580";  // ▀
      else if (!bottom)
        out += "\u2584";  // ▄
      else
        out += ' ';
    }
    out += '\n';
  }
  return out;
}

Result<std::string> qr_utf8_ansi(std::string_view text) {
  MFA_TRY(plain, qr_utf8(text));
  std::string out;
  out.reserve(plain.size() + plain.size() / 8);
  size_t start = 0;
  while (start < plain.size()) {
    const size_t nl = plain.find('\n', start);
    out += "\x1b[97;40m";
    out.append(plain, start, nl - start);
    out += "\x1b[0m\n";
    start = nl + 1;
  }
  return out;
}

Result<std::string> qr_svg(std::string_view text) {
  MFA_TRY(m, encode(text));
  const std::string w = std::to_string(m.width);
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 " +
      w + " " + w + "\" width=\"" + std::to_string(m.width * 8) + "\" height=\"" +
      std::to_string(m.width * 8) +
      "\" shape-rendering=\"crispEdges\">\n"
      "<rect width=\"" +
      w + "\" height=\"" + w + "\" fill=\"#ffffff\"/>\n<path fill=\"#000000\" d=\"";
  for (int y = 0; y < m.width; ++y)
    for (int x = 0; x < m.width; ++x)
      if (m.at(x, y))
        out += "M" + std::to_string(x) + " " + std::to_string(y) + "h1v1h-1z";
  out += "\"/>\n</svg>\n";
  return out;
}

}  // namespace mfa
