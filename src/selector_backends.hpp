// Internal: one factory per selector backend, each defined in its own file.
#pragma once

#include <memory>

#include "wire/selector.hpp"

namespace wire::detail {

Result<std::unique_ptr<Selector>> make_epoll_selector() noexcept;
Result<std::unique_ptr<Selector>> make_poll_selector() noexcept;
Result<std::unique_ptr<Selector>> make_select_selector() noexcept;

}  // namespace wire::detail
