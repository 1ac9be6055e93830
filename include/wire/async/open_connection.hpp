// wire/async/open_connection.hpp — create_connection for coroutines: the loop goes on serving
// everything else while the name is looked up and the connects race.
//
//   wire::AsyncSocket conn = co_await wire::open_connection("tcp://localhost:8080", 5s);
//   co_await conn.send_all("hello\n");
//
//   const wire::ConnectOptions ipv6{.timeout = 5s, .family = wire::Family::inet6};
//   auto conn = co_await wire::open_connection("tcp://db.internal:5432", ipv6, std::nothrow);
//   if (!conn) co_return conn.error();       // a Result<AsyncSocket>
//
// Name the options as above rather than bracing them inside the co_await
// (open_connection(text, {.timeout = 5s})): g++ 12 copies a braced temporary that holds a
// std::string (ConnectOptions::source_host) bytewise into the coroutine frame, and the copy
// then frees a pointer into the frame (the same bug as braced lists, see send_fds). Outside
// a coroutine the braces are fine.
//
// What create_connection does (wire/connect.hpp), without blocking the loop:
//  - A host name is looked up by getaddrinfo on one of the loop's worker threads
//    (EventLoop::run_in_thread); numeric and Unix addresses never leave the loop's thread.
//  - Happy Eyeballs (RFC 8305) on the loop, with create_connection's very schedule:
//    candidates alternate between IPv6 and IPv4, the next attempt starts
//    connection_attempt_delay (250 ms) after the previous, or at once when it failed; the
//    first to connect wins and every other attempt is withdrawn from the loop and closed.
//  - The timeout is one deadline for the lookup and the connects together. When it passes
//    during the lookup the error is errc::timed_out naming the address text
//    ("resolve tcp://db.internal:5432: timed out after 5 s"); getaddrinfo cannot be
//    interrupted, so it finishes on its worker and its answer is dropped.
//  - Errors read as create_connection's: "connect ADDRESS: reason" for a single address,
//    every address tried and why it failed for several, "resolve TEXT: reason" when the
//    lookup failed.
//  - Cancelling (TaskHandle::cancel, with_timeout, destroying the task) closes every
//    attempt's socket at once and leaves nothing registered with the loop.
//
// The socket belongs to the loop running the awaiting coroutine (EventLoop::current(), read
// when the task starts; wire::Error with errc::operation_not_permitted when none runs), or
// to the loop given, which must be the one running the awaiting coroutine. The text is
// copied: the task may be awaited after the caller's string is gone.
#pragma once

#include <new>
#include <string_view>
#include <vector>

#include "wire/address.hpp"
#include "wire/async_socket.hpp"
#include "wire/connect.hpp"
#include "wire/error.hpp"
#include "wire/loop.hpp"
#include "wire/task.hpp"

namespace wire {

Task<AsyncSocket> open_connection(std::string_view address, Timeout timeout = std::nullopt);
Task<AsyncSocket> open_connection(std::string_view address, const ConnectOptions& options);
Task<Result<AsyncSocket>> open_connection(std::string_view address, Timeout timeout,
                                          std::nothrow_t);
Task<Result<AsyncSocket>> open_connection(std::string_view address, const ConnectOptions& options,
                                          std::nothrow_t);

// The same on `loop`.
Task<AsyncSocket> open_connection(EventLoop& loop, std::string_view address,
                                  Timeout timeout = std::nullopt);
Task<AsyncSocket> open_connection(EventLoop& loop, std::string_view address,
                                  const ConnectOptions& options);
Task<Result<AsyncSocket>> open_connection(EventLoop& loop, std::string_view address,
                                          Timeout timeout, std::nothrow_t);
Task<Result<AsyncSocket>> open_connection(EventLoop& loop, std::string_view address,
                                          const ConnectOptions& options, std::nothrow_t);

// Over an explicit candidate list, in the caller's preference order (no resolver), as
// create_connection takes one.
Task<AsyncSocket> open_connection(std::vector<Address> candidates, Timeout timeout = std::nullopt);
Task<Result<AsyncSocket>> open_connection(std::vector<Address> candidates, Timeout timeout,
                                          std::nothrow_t);

}  // namespace wire
