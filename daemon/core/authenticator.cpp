// Every decision mfad makes: who may call what, which code is good, when a user is locked out.
// The order inside each method is validate, authorize, act, audit, answer. Storage and audit
// failures are errors (fail closed); no path turns an error into a success.
//
// The methods live by job: authenticator_access.cpp (the tiers and step-up),
// authenticator_login.cpp (the PAM side), authenticator_enrollment.cpp (factors),
// authenticator_admin.cpp (user info, admin operations); this file holds the challenges'
// housekeeping.
#include "core/authenticator.hpp"

#include "core/authenticator_impl.hpp"

namespace mfa {

Authenticator::Authenticator(AuthenticatorDeps deps) : impl_(std::make_unique<Impl>(deps)) {}
Authenticator::~Authenticator() = default;

bool Authenticator::is_admin(const Caller& caller) const {
  return impl_->is_admin(caller);
}

uint64_t Authenticator::expire_challenges() {
  return impl_->challenges.expire(impl_->d_.clock.monotonic_usec());
}

size_t Authenticator::open_challenges() const {
  return impl_->challenges.size();
}

std::string Authenticator::challenge_user(const Caller& caller, std::string_view challenge) {
  const Challenge* c = impl_->challenges.find(challenge, challenge_owner(caller));
  return c != nullptr ? c->user : std::string();
}

}  // namespace mfa
