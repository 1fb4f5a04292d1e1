// Per-person data keys (core/data_keys.hpp): records sealed under a person's own key open with
// it; the key file holds no clear key and no name; destroying it makes every copy of the records
// unreadable, also with the master key; records sealed under the master key move under data keys
// (seal_all) and still open.
#include <unistd.h>

#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" {
#include <cmocka.h>
}

#include "common/seal.hpp"
#include "core/clock.hpp"
#include "core/data_keys.hpp"
#include "storage/sqlite_store.hpp"

using namespace mfa;

namespace {

// The system's directory is not asked: every key here is an account key.
class NoUsers final : public UserDirectory {
 public:
  std::optional<uid_t> uid_of(std::string_view) const override { return std::nullopt; }
  std::optional<std::string> name_of(uid_t) const override { return std::nullopt; }
  bool in_group(uid_t, std::string_view) const override { return false; }
};

struct Fixture {
  std::string dir;
  std::unique_ptr<Sealer> master;
};

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

int setup(void** state) {
  auto* f = new Fixture;
  char tmpl[] = "/tmp/mfad-test-keys-XXXXXX";
  if (!mkdtemp(tmpl))
    return -1;
  f->dir = tmpl;
  auto sealer = Sealer::create(std::vector<uint8_t>(32, 0x23));
  if (!sealer.ok())
    return -1;
  f->master = std::make_unique<Sealer>(std::move(sealer).value());
  *state = f;
  return 0;
}

int teardown(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::filesystem::remove_all(f->dir);
  delete f;
  return 0;
}

void test_seal_open_destroy(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  DataKeys keys(f->dir + "/keys", *f->master, true);
  assert_true(keys.prepare().ok());
  auto sealed = keys.seal("uid/1000", bytes("seed-of-alice"), "uid/1000", "totp");
  assert_true(sealed.ok());
  assert_false(keys.under_master(*sealed));
  // The master key alone does not open it.
  assert_false(f->master->open(*sealed, "uid/1000", "totp").ok());
  auto opened = keys.open("uid/1000", *sealed, "uid/1000", "totp");
  assert_true(opened.ok());
  assert_memory_equal(opened->data(), "seed-of-alice", 13);
  // Bound to owner and kind, and to the person's own key.
  assert_false(keys.open("uid/1000", *sealed, "uid/1001", "totp").ok());
  assert_false(keys.open("uid/1001", *sealed, "uid/1000", "totp").ok());
  // One file, named by no name, holding no clear key.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(f->dir + "/keys")) {
    ++files;
    assert_true(entry.path().filename().string().find("1000") == std::string::npos);
    assert_int_equal(std::filesystem::status(entry.path()).permissions() &
                         (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
                     std::filesystem::perms::none);
  }
  assert_int_equal(files, 1);
  // A second record of the same person: the same key, no second file.
  assert_true(keys.seal("uid/1000", bytes("+15550000"), "uid/1000", "sms").ok());
  assert_int_equal(std::distance(std::filesystem::directory_iterator(f->dir + "/keys"),
                                 std::filesystem::directory_iterator()),
                   1);

  auto destroyed = keys.destroy("uid/1000");
  assert_true(destroyed.ok() && *destroyed);
  auto gone = keys.open("uid/1000", *sealed, "uid/1000", "totp");
  assert_false(gone.ok());
  assert_int_equal(static_cast<int>(gone.error().code), static_cast<int>(Errc::kCrypto));
  assert_true(gone.error().message.find("forgotten") != std::string::npos);
  destroyed = keys.destroy("uid/1000");
  assert_true(destroyed.ok() && !*destroyed);
}

// Opened keys are kept a while for every DataKeys of the process (they are made where they are
// used): a destroy or an install through any of them is seen by all at once, and a key opened
// under one master key is not served to another.
void test_opened_keys_follow_destroy_and_install(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  const std::string dir = f->dir + "/keys";
  DataKeys sealing(dir, *f->master, true);
  assert_true(sealing.prepare().ok());
  auto sealed = sealing.seal("uid/1000", bytes("seed"), "uid/1000", "totp");
  assert_true(sealed.ok());
  DataKeys opening(dir, *f->master, true);
  assert_true(opening.open("uid/1000", *sealed, "uid/1000", "totp").ok());

  auto other_master = Sealer::create(std::vector<uint8_t>(32, 0x42));
  assert_true(other_master.ok());
  DataKeys other(dir, *other_master, true);
  auto refused = other.open("uid/1000", *sealed, "uid/1000", "totp");
  assert_false(refused.ok());
  assert_int_equal(static_cast<int>(refused.error().code), static_cast<int>(Errc::kCrypto));

  // Another person's key put in place (fleet mode: the fleet's copy) replaces the one kept.
  auto exported = DataKeys(dir, *f->master, true).export_key("uid/1000");
  assert_true(exported.ok() && exported->has_value());
  std::vector<uint8_t> replacement(32, 0x77);
  assert_true(DataKeys(dir, *f->master, true).install_key("uid/1000", replacement).ok());
  assert_false(opening.open("uid/1000", *sealed, "uid/1000", "totp").ok());
  assert_true(DataKeys(dir, *f->master, true).install_key("uid/1000", (*exported)->span()).ok());
  assert_true(opening.open("uid/1000", *sealed, "uid/1000", "totp").ok());

  // Forgotten through one: no other opens the record from what it kept.
  auto destroyed = DataKeys(dir, *f->master, true).destroy("uid/1000");
  assert_true(destroyed.ok() && *destroyed);
  auto gone = opening.open("uid/1000", *sealed, "uid/1000", "totp");
  assert_false(gone.ok());
  assert_int_equal(static_cast<int>(gone.error().code), static_cast<int>(Errc::kCrypto));
}

void test_fleet_mode_seals_under_master(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  DataKeys keys(f->dir + "/keys", *f->master, false);
  auto sealed = keys.seal("uid/1000", bytes("seed"), "uid/1000", "totp");
  assert_true(sealed.ok());
  assert_true(keys.under_master(*sealed));
  assert_true(f->master->open(*sealed, "uid/1000", "totp").ok());
  assert_false(std::filesystem::exists(f->dir + "/keys"));
}

void test_seal_all_moves_master_records(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  FakeClock clock;
  auto store = SqliteStore::open(f->dir + "/mfad.db", clock);
  assert_true(store.ok());
  FactorRecord old;
  old.method = Method::kTotp;
  old.params = "SHA1:6:30";
  old.sealed = *f->master->seal(bytes("old-seed"), "uid/1000", "totp");
  assert_true((*store)->put_factor("uid/1000", old).ok());
  FactorRecord broken = old;
  broken.method = Method::kSms;
  broken.sealed = *f->master->seal(bytes("x"), "uid/1000", "not-sms");  // never opens
  assert_true((*store)->put_factor("uid/1000", broken).ok());
  assert_true((*store)->flush().ok());

  DataKeys keys(f->dir + "/keys", *f->master, true);
  assert_true(keys.prepare().ok());
  NoUsers users;
  auto moved = keys.seal_all(**store, users);
  assert_true(moved.ok());
  assert_int_equal(*moved, 1);
  assert_true((*store)->flush().ok());
  auto factors = (*store)->get_factors("uid/1000");
  assert_int_equal(factors->size(), 2);
  for (const FactorRecord& r : *factors) {
    if (r.method == Method::kTotp) {
      assert_false(keys.under_master(r.sealed));
      auto opened = keys.open("uid/1000", r.sealed, "uid/1000", "totp");
      assert_true(opened.ok());
      assert_memory_equal(opened->data(), "old-seed", 8);
    } else {
      assert_true(keys.under_master(r.sealed));  // left as it was
    }
  }
  // Run again: nothing left to move.
  assert_int_equal(*keys.seal_all(**store, users), 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_seal_open_destroy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_opened_keys_follow_destroy_and_install, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fleet_mode_seals_under_master, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seal_all_moves_master_records, setup, teardown),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
