#include "wire/version.hpp"

// WIRE_VERSION comes from CMakeLists.txt's project() version (see src/CMakeLists.txt), set on
// this file alone so a version bump rebuilds one file.
#ifndef WIRE_VERSION
#error "WIRE_VERSION must be defined by the build (src/CMakeLists.txt)"
#endif

namespace wire {

std::string_view version() noexcept {
  return WIRE_VERSION;
}

}  // namespace wire
