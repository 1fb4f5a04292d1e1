// One type for every secret in memory: seeds, keys, codes, phone numbers. Erased with
// OPENSSL_cleanse when destroyed or reassigned; never copied implicitly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mfa {

// Overwrites memory in a way the compiler cannot elide.
void secure_erase(void* data, size_t size);

class SecureBytes {
 public:
  SecureBytes() = default;
  explicit SecureBytes(size_t size);
  explicit SecureBytes(std::span<const uint8_t> data);
  ~SecureBytes();
  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;
  SecureBytes clone() const { return SecureBytes(span()); }

  uint8_t* data() { return data_.data(); }
  const uint8_t* data() const { return data_.data(); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  std::span<uint8_t> span() { return {data_.data(), data_.size()}; }
  std::span<const uint8_t> span() const { return {data_.data(), data_.size()}; }
  void clear();  // erases, then empties

 private:
  std::vector<uint8_t> data_;
};

class SecureString {
 public:
  SecureString() = default;
  explicit SecureString(std::string_view s);
  ~SecureString();
  SecureString(SecureString&& other) noexcept;
  SecureString& operator=(SecureString&& other) noexcept;
  SecureString(const SecureString&) = delete;
  SecureString& operator=(const SecureString&) = delete;
  SecureString clone() const { return SecureString(view()); }

  std::string_view view() const { return {s_.data(), s_.size()}; }
  const char* c_str() const { return s_.c_str(); }
  size_t size() const { return s_.size(); }
  bool empty() const { return s_.empty(); }
  void append(std::string_view s);  // reserves first so no stale copy is left behind
  void clear();

 private:
  std::string s_;
};

}  // namespace mfa
