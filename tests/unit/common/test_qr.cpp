// QR rendering: reading the UTF-8 picture back gives exactly libqrencode's modules, with a
// 4-module light quiet zone, in only the expected characters; the SVG is a whole document.
#include <qrencode.h>

#include <string>
#include <vector>

#include "common/qr.hpp"
#include "cmocka_cpp.hpp"

namespace {

constexpr char kUri[] =
    "otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME&algorithm=SHA1"
    "&digits=6&period=30";

// One rendered line → per-column (top dark, bottom dark).
std::vector<std::pair<bool, bool>> decode_line(std::string_view line) {
  std::vector<std::pair<bool, bool>> cells;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ') {
      cells.push_back({true, true});
      ++i;
      continue;
    }
    const std::string_view ch = line.substr(i, 3);
    if (ch == "\u2588")
      cells.push_back({false, false});
    else if (ch == "\u2580")
      cells.push_back({false, true});
    else if (ch == "\u2584")
      cells.push_back({true, false});
    else
      fail_msg("unexpected character at byte %zu", i);
    i += 3;
  }
  return cells;
}

void test_utf8_matches_modules(void**) {
  auto art = mfa::qr_utf8(kUri);
  assert_true(art.ok());
  QRcode* qr = QRcode_encodeData(static_cast<int>(sizeof kUri - 1),
                                 reinterpret_cast<const unsigned char*>(kUri), 0, QR_ECLEVEL_M);
  assert_non_null(qr);
  const int w = qr->width + 8;
  std::vector<std::string_view> lines;
  std::string_view rest = *art;
  assert_true(!rest.empty() && rest.back() == '\n');
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  assert_int_equal(lines.size(), (w + 1) / 2);
  auto dark = [&](int x, int y) {
    x -= 4;
    y -= 4;
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
      return false;  // quiet zone: light
    return (qr->data[y * qr->width + x] & 1) != 0;
  };
  for (int line = 0; line < static_cast<int>(lines.size()); ++line) {
    auto cells = decode_line(lines[line]);
    assert_int_equal(cells.size(), w);
    for (int x = 0; x < w; ++x) {
      assert_true(cells[x].first == dark(x, 2 * line));
      assert_true(cells[x].second == (2 * line + 1 < w && dark(x, 2 * line + 1)));
    }
  }
  // The quiet zone as a user sees it: the first two and last two lines are solid light, and
  // every line starts and ends with four light cells.
  const std::string solid = [&] {
    std::string s;
    for (int i = 0; i < w; ++i)
      s += "\u2588";
    return s;
  }();
  assert_true(lines[0] == solid && lines[1] == solid);
  assert_true(lines[lines.size() - 1] == solid && lines[lines.size() - 2] == solid);
  for (auto l : lines) {
    assert_true(l.starts_with("\u2588\u2588\u2588\u2588"));
    assert_true(l.ends_with("\u2588\u2588\u2588\u2588"));
  }
  // The top-left finder pattern's dark border starts at module (4, 4): line 2, top half.
  auto cells = decode_line(lines[2]);
  assert_true(cells[4].first && cells[10].first && !cells[3].first);
  QRcode_free(qr);
}

void test_svg(void**) {
  auto svg = mfa::qr_svg(kUri);
  assert_true(svg.ok());
  const std::string& s = *svg;
  assert_true(s.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "));
  assert_true(s.ends_with("</svg>\n"));
  assert_true(s.find("xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  QRcode* qr = QRcode_encodeData(static_cast<int>(sizeof kUri - 1),
                                 reinterpret_cast<const unsigned char*>(kUri), 0, QR_ECLEVEL_M);
  const std::string w = std::to_string(qr->width + 8);
  assert_true(s.find("viewBox=\"0 0 " + w + " " + w + "\"") != std::string::npos);
  assert_true(s.find("fill=\"#ffffff\"") != std::string::npos);
  // The first dark module sits inside the quiet zone's edge, at (4, 4).
  assert_true(s.find("d=\"M4 4h1v1h-1z") != std::string::npos);
  assert_true(s.find("M3 ") == std::string::npos && s.find(" 3h1") == std::string::npos);
  QRcode_free(qr);
}

void test_ansi(void**) {
  auto plain = mfa::qr_utf8(kUri);
  auto ansi = mfa::qr_utf8_ansi(kUri);
  assert_true(plain.ok() && ansi.ok());
  std::string stripped;
  std::string_view rest = *ansi;
  size_t lines = 0;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    assert_true(nl != std::string_view::npos);
    std::string_view line = rest.substr(0, nl);
    assert_true(line.starts_with("\x1b[97;40m"));
    assert_true(line.ends_with("\x1b[0m"));
    line.remove_prefix(8);
    line.remove_suffix(4);
    stripped.append(line);
    stripped.push_back('\n');
    rest.remove_prefix(nl + 1);
    ++lines;
  }
  assert_true(lines > 10);
  assert_true(stripped == *plain);
  assert_false(mfa::qr_utf8_ansi("").ok());
}

void test_limits(void**) {
  auto empty = mfa::qr_utf8("");
  assert_false(empty.ok());
  assert_int_equal(static_cast<int>(empty.error().code),
                   static_cast<int>(mfa::Errc::kInvalidArgument));
  auto huge = mfa::qr_utf8(std::string(5000, 'x'));
  assert_false(huge.ok());
  assert_int_equal(static_cast<int>(huge.error().code),
                   static_cast<int>(mfa::Errc::kInvalidArgument));
  assert_false(mfa::qr_svg(std::string(5000, 'x')).ok());
  // Bytes that are not text (NUL included) encode as data.
  assert_true(mfa::qr_utf8(std::string("a\0b", 3)).ok());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf8_matches_modules),
      cmocka_unit_test(test_svg),
      cmocka_unit_test(test_ansi),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
