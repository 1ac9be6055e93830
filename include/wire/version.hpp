// wire/version.hpp — which libwire is running.
//
//   std::printf("libwire %.*s\n", static_cast<int>(wire::version().size()),
//               wire::version().data());                       // "libwire 0.1.0"
//
// The project version of CMakeLists.txt (`project(wire VERSION X.Y.Z)`), compiled into the
// library rather than written into this header: it names the library a program runs with,
// not the headers it was compiled against. `wire --version` prints it.
#pragma once

#include <string_view>

namespace wire {

// "X.Y.Z".
std::string_view version() noexcept;

}  // namespace wire
