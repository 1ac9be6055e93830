#include "wire/task.hpp"

#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define WIRE_FRAME_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WIRE_FRAME_CACHE 0
#endif
#endif
#ifndef WIRE_FRAME_CACHE
#define WIRE_FRAME_CACHE 1
#endif

namespace wire::detail {
#if WIRE_FRAME_CACHE
namespace {

// Frames are cached by size, rounded up to 64 bytes, up to 4 KiB (larger ones are rare and
// go straight to operator new). Each class keeps at most a few dozen frames, so a burst of
// connections does not pin memory after it has gone.
constexpr std::size_t granule = 64;
constexpr std::size_t classes = 64;
constexpr std::size_t keep_per_class = 32;

struct FreeFrame {
  FreeFrame* next;
};

struct FrameCache {
  FreeFrame* heads[classes] = {};
  std::uint32_t counts[classes] = {};
  ~FrameCache();
};

// Trivially destructible, so it is still readable while (and after) the cache itself is
// destroyed at thread exit: frames freed then go back to operator delete.
thread_local bool cache_gone = false;
thread_local FrameCache cache;

FrameCache::~FrameCache() {
  cache_gone = true;
  for (std::size_t c = 0; c < classes; ++c) {
    while (FreeFrame* f = heads[c]) {
      heads[c] = f->next;
      ::operator delete(f);
    }
  }
}

}  // namespace

void* allocate_frame(std::size_t size) {
  const std::size_t c = (size - 1) / granule;
  if (c < classes && !cache_gone) {
    if (FreeFrame* f = cache.heads[c]) {
      cache.heads[c] = f->next;
      --cache.counts[c];
      return f;
    }
    return ::operator new((c + 1) * granule);
  }
  return ::operator new(size);
}

void free_frame(void* frame, std::size_t size) noexcept {
  const std::size_t c = (size - 1) / granule;
  if (c < classes && !cache_gone && cache.counts[c] < keep_per_class) {
    auto* f = static_cast<FreeFrame*>(frame);
    f->next = cache.heads[c];
    cache.heads[c] = f;
    ++cache.counts[c];
    return;
  }
  ::operator delete(frame);
}
#else
// Under AddressSanitizer every frame comes from operator new, so a use after free of a
// frame is still caught.
void* allocate_frame(std::size_t size) {
  return ::operator new(size);
}
void free_frame(void* frame, std::size_t) noexcept {
  ::operator delete(frame);
}
#endif

}  // namespace wire::detail
