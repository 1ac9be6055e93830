#include "wire/async/send_queue.hpp"

namespace wire {

namespace {
EventLoop& loop_of(AsyncSocket& socket) {
  if (socket.loop() == nullptr) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "SendQueue", "",
                "the socket is not on a loop");
  }
  return *socket.loop();
}
}  // namespace

SendQueue::SendQueue(AsyncSocket& socket, std::size_t max_messages)
    : socket_(socket), queue_(max_messages), writer_(loop_of(socket)) {
  writer_.spawn(write_all(*this)).detach();
}

bool SendQueue::try_send(std::string message) {
  return queue_.try_push(std::move(message));
}

Task<void> SendQueue::write_all(SendQueue& self) {
  while (auto message = co_await self.queue_.pop()) {
    auto sent = co_await self.socket_.send_all(*message, std::nothrow);
    if (!sent) {
      self.error_ = sent.error();
      self.queue_.close();
      while (self.queue_.try_pop()) {
      }
      break;
    }
  }
  self.finished_.set();
}

}  // namespace wire
