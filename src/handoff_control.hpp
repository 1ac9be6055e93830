// The serving side of a handoff (wire/handoff.hpp), used by serve(): the control socket and
// the conversation with a successor on it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wire/async_socket.hpp"
#include "wire/loop.hpp"
#include "wire/process/spawn.hpp"
#include "wire/server.hpp"
#include "wire/socket.hpp"
#include "wire/socket_file.hpp"
#include "wire/task.hpp"

namespace wire::detail {

// Makes `folder` if missing (0700) and refuses (EPERM) one that is not a directory of ours
// closed to everyone else: another user who could enter it could reach the control socket.
void ensure_private_folder(const std::string& folder);

// The control socket's file. Bound beside its path and renamed over it by publish(), so a
// successor replaces its predecessor's socket in one step (its predecessor still had it
// while the handoff went on). Owns the listening fd until take_listener(), and the path:
// removed at the end if still ours, unless a successor took it (keep()).
class ControlEndpoint {
 public:
  // `replace_live`: a serving process may sit on the path (our predecessor). Otherwise a
  // live one there is an error: two servers cannot share a control path.
  ControlEndpoint(const std::string& path, bool replace_live);
  ControlEndpoint(const ControlEndpoint&) = delete;
  ControlEndpoint& operator=(const ControlEndpoint&) = delete;
  ~ControlEndpoint();

  // Throws wire::Error; everything it needs was checked by the constructor, so only a
  // change made meanwhile by someone else makes it fail.
  void publish();
  // After a failed publish(): the socket bound beside the path goes (no one could find it).
  void abandon() noexcept;
  void keep() noexcept;
  Socket take_listener() { return std::move(listener_); }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  std::string temporary_;  // where it was bound, until published
  Socket listener_;
  std::unique_ptr<SocketFile> file_;
};

// The restart signal's handler, installed from construction to destruction (before the
// server says it listens, so a signal sent on that word never meets the default action,
// which ends the process). Each signal writes a byte that the reader's loop receives.
class RestartSignal {
 public:
  explicit RestartSignal(int signal_number);
  RestartSignal(const RestartSignal&) = delete;
  RestartSignal& operator=(const RestartSignal&) = delete;
  ~RestartSignal();
  // The end the bytes arrive on (owns that fd), for one ControlServer.
  Socket take_reader() { return std::move(reader_); }

 private:
  int signal_number_;
  Socket reader_;
};

// What a worker needs to hand over: its loop's conversation with successors, a way to get
// copies of every worker's listener (made only for a conversation, so the fd table shows
// each listener once; empty once the workers are stopping), and what to call once a
// successor said ready.
class ControlServer {
 public:
  // `restart_reader`: a RestartSignal's reader, or an empty Socket for no restarts.
  ControlServer(EventLoop& loop, Socket listener,
                std::function<std::vector<Socket>()> copy_listeners, Socket restart_reader,
                const ServeOptions& options, std::function<void()> on_handed_off);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  void start();
  bool handed_off() const noexcept { return handed_off_; }

 private:
  Task<void> accept_loop();
  Task<void> converse(AsyncSocket conn);
  Task<void> restart_loop();
  void report(const std::string& message) const;
  void reap_restarts() noexcept;

  EventLoop& loop_;
  AsyncSocket listener_;
  std::function<std::vector<Socket>()> copy_listeners_;
  const ServeOptions& options_;
  std::function<void()> on_handed_off_;
  bool handed_off_ = false;
  Task<void> accept_task_;
  Task<void> restart_task_;
  AsyncSocket restart_wake_;             // a byte per restart signal
  std::vector<ChildProcess> restarted_;  // successors started on the signal, until they end
  EventLoop::TimerId start_timer_ = 0;
};

}  // namespace wire::detail
