#include "common/secure_buffer.hpp"

#include <openssl/crypto.h>

#include <utility>

namespace mfa {

void secure_erase(void* data, size_t size) {
  if (data && size)
    OPENSSL_cleanse(data, size);
}

namespace {

// Erases the whole allocation (capacity, not just size): bytes past size() may still hold data
// from before a shrink or clear().
void erase_vector(std::vector<uint8_t>& v) {
  secure_erase(v.data(), v.capacity());
}

// std::string keeps short strings inside the object (SSO), so a move copies them and leaves the
// source's bytes in place; the whole buffer (capacity + terminator) is erased instead.
void erase_string(std::string& s) {
  secure_erase(s.data(), s.capacity() + 1);
}

}  // namespace

SecureBytes::SecureBytes(size_t size) : data_(size) {}

SecureBytes::SecureBytes(std::span<const uint8_t> data) : data_(data.begin(), data.end()) {}

SecureBytes::~SecureBytes() {
  erase_vector(data_);
}

SecureBytes::SecureBytes(SecureBytes&& other) noexcept : data_(std::move(other.data_)) {
  erase_vector(other.data_);
  other.data_.clear();
}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept {
  if (this != &other) {
    erase_vector(data_);
    data_.clear();
    data_.swap(other.data_);
    erase_vector(other.data_);
    other.data_.clear();
    other.data_.shrink_to_fit();
  }
  return *this;
}

void SecureBytes::clear() {
  erase_vector(data_);
  data_.clear();
}

SecureString::SecureString(std::string_view s) {
  // Reserve first: a string built by growth would leave stale partial copies behind.
  s_.reserve(s.size());
  s_.assign(s.data(), s.size());
}

SecureString::~SecureString() {
  erase_string(s_);
}

SecureString::SecureString(SecureString&& other) noexcept : s_(std::move(other.s_)) {
  erase_string(other.s_);
  other.s_.clear();
}

SecureString& SecureString::operator=(SecureString&& other) noexcept {
  if (this != &other) {
    erase_string(s_);
    s_.clear();
    s_.swap(other.s_);
    erase_string(other.s_);
    other.s_.clear();
  }
  return *this;
}

void SecureString::append(std::string_view s) {
  const size_t needed = s_.size() + s.size();
  if (needed > s_.capacity()) {
    // Grow into a fresh buffer ourselves so the old one can be erased before it is freed.
    std::string grown;
    grown.reserve(needed < 2 * s_.capacity() ? 2 * s_.capacity() : needed);
    grown.append(s_);
    erase_string(s_);
    s_.swap(grown);
    // grown now holds the old, erased buffer and frees it on scope exit.
  }
  s_.append(s.data(), s.size());
}

void SecureString::clear() {
  erase_string(s_);
  s_.clear();
}

}  // namespace mfa
