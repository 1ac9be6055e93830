// libFuzzer target for Address::parse. For any text: parsing must not crash or hit undefined
// behaviour; a failure is invalid_address with a message free of control bytes; a success
// holds no NUL (the C calls underneath would have dropped what follows one), keeps a Unix
// path and a port exactly as written, and its canonical text parses back to an equal
// address with the same text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "wire/address.hpp"

using namespace wire;

namespace {

bool printable(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

void check_failure(const std::string& text, std::error_code error) {
  if (error != errc::invalid_address) std::abort();
  try {
    (void)Address::parse(text);
  } catch (const Error& e) {
    if (e.code() != errc::invalid_address || !printable(e.what())) std::abort();
    return;
  }
  std::abort();  // the throwing overload accepted what the other refused
}

// The digits after the last ':' as a number (the port an IP address was written with).
unsigned long written_port(std::string_view text) {
  unsigned long port = 0;
  for (char c : text.substr(text.rfind(':') + 1)) port = port * 10 + static_cast<unsigned>(c - '0');
  return port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = Address::parse(text, std::nothrow);
  if (!parsed) {
    check_failure(text, parsed.error());
    return 0;
  }
  if (text.find('\0') != std::string::npos) std::abort();
  const Address& address = *parsed;

  if (address.family() == Family::local) {
    std::string_view written = std::string_view(text).substr(text.find(':') + 1);
    if (address.is_abstract()) written.remove_prefix(1);  // the '@'
    if (address.path() != written) std::abort();
  } else if (address.port() != written_port(text)) {
    std::abort();
  }

  const std::string canonical = address.to_string();
  if (canonical.empty() || canonical.find('\0') != std::string::npos) std::abort();
  auto again = Address::parse(canonical, std::nothrow);
  if (!again || !(*again == address) || again->to_string() != canonical) std::abort();
  return 0;
}
