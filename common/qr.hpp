// QR codes for enrollment (libqrencode).
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace mfa {

// UTF-8 half blocks (two modules per character cell), dark modules drawn as spaces on a light
// background made of '█', '▀', '▄' so it scans on dark and light terminals alike; 4-module quiet
// zone included. Error correction level M.
Result<std::string> qr_utf8(std::string_view text);
// The same picture with explicit colours (ANSI SGR: bright white on black, reset at each line's
// end), for terminals whose theme is light: without colours a light theme shows the code
// inverted, which some authenticator apps do not scan. Use it when the output is a terminal.
Result<std::string> qr_utf8_ansi(std::string_view text);
// A standalone SVG document.
Result<std::string> qr_svg(std::string_view text);

}  // namespace mfa
