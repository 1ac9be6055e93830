// wire/buffer.hpp — BufferPool and Buffer: read buffers lent only while data is in hand.
//
//   wire::Buffer data = co_await conn.recv_pooled();   // no buffer is held while waiting
//   if (data.empty()) co_return;                       // the peer closed
//   co_await conn.send_all(data.view());
//                                                      // data returns to the pool here
// An idle connection waiting in recv_pooled() holds no read buffer; the loop lends one
// from its pool only once the socket is readable (io_uring's provided-buffer model).
//
// Ownership: a BufferPool owns its blocks; a Buffer borrows one and gives it back when
// destroyed, so a Buffer must not outlive the pool (that is, its EventLoop). Not
// thread-safe: one pool per loop, used by that loop's thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace wire {

class BufferPool;

class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(BufferPool* pool, char* block, std::size_t size) noexcept
      : pool_(pool), block_(block), size_(size) {}
  Buffer(Buffer&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)),
        block_(std::exchange(other.block_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      pool_ = std::exchange(other.pool_, nullptr);
      block_ = std::exchange(other.block_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  const char* data() const noexcept { return block_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::string_view view() const noexcept { return {block_, size_}; }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: reads naturally
  // Gives the block back now.
  void release() noexcept;

 private:
  BufferPool* pool_ = nullptr;
  char* block_ = nullptr;
  std::size_t size_ = 0;
};

class BufferPool {
 public:
  static constexpr std::size_t block_size = 16384;
  // At most `keep` free blocks are cached; more are freed, so a burst does not pin memory.
  explicit BufferPool(std::size_t keep = 256) : keep_(keep) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool() {
    for (char* block : free_) delete[] block;
  }

  char* acquire() {
    if (free_.empty()) return new char[block_size];
    char* block = free_.back();
    free_.pop_back();
    return block;
  }
  void give_back(char* block) noexcept {
    if (free_.size() < keep_) {
      try {
        free_.push_back(block);
        return;
      } catch (...) {
      }
    }
    delete[] block;
  }
  std::size_t cached() const noexcept { return free_.size(); }

 private:
  std::size_t keep_;
  std::vector<char*> free_;
};

inline void Buffer::release() noexcept {
  if (block_ != nullptr && pool_ != nullptr) pool_->give_back(block_);
  block_ = nullptr;
  pool_ = nullptr;
  size_ = 0;
}

}  // namespace wire
