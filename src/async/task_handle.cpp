#include "wire/async/task_handle.hpp"

#include "wire/async/task_group.hpp"

namespace wire::detail {

bool TaskState::cancel() noexcept {
  if (settled()) return false;
  if (cancel_requested_) return true;
  cancel_requested_ = true;  // even if it fails below: asked once, never again in a loop
  EventLoop* running_on = loop();
  if (running_on == nullptr) return false;
  add_ref();  // until the deferred half has run
  try {
    running_on->defer_until_idle(
        [](void* context) noexcept {
          auto* state = static_cast<TaskState*>(context);
          state->cancel_now();
          state->release();
        },
        this);
  } catch (...) {
    release();
    return false;  // out of memory: the task runs on, and the caller is told
  }
  return true;
}

void TaskState::cancel_now() noexcept {
  if (settled() || !root_) return;
  EventLoop* running_on = loop();
  if (running_on == nullptr) return;
  // Destroying the frame runs on_done, which settles this state as cancelled.
  running_on->cancel_task(root_);
}

void TaskState::on_done(void* context, std::exception_ptr escaped) noexcept {
  auto* state = static_cast<TaskState*>(context);
  if (escaped && !state->error_) state->error_ = escaped;
  state->settle();
  state->release();  // the loop's reference
}

void TaskState::settle() noexcept {
  root_ = {};
  status_ = !ran_to_end_ ? Status::cancelled : error_ ? Status::failed : Status::finished;
  if (joiner != nullptr) {
    WakeNode* waiting = std::exchange(joiner, nullptr);
    if (EventLoop* running_on = loop()) running_on->wake(*waiting);
  }
  if (group != nullptr) {
    group->child_settled(this);  // may drop the group's reference; the loop's holds
  } else if (handle_dropped) {
    report_untaken();
  }
}

void TaskState::report_untaken() noexcept {
  if (status_ != Status::failed || error_taken || group != nullptr) return;
  error_taken = true;
  if (EventLoop* running_on = loop()) running_on->report(error_);
}

bool SettleAwaiter::await_suspend(std::coroutine_handle<> handle) {
  if (state_->joiner != nullptr) {
    throw Error(std::make_error_code(std::errc::device_or_resource_busy), "join task", "",
                "another coroutine is already waiting for this task");
  }
  loop_ = state_->loop();
  if (loop_ == nullptr) return false;  // its loop is gone: it reads as cancelled
  node_.handle = handle;
  state_->joiner = &node_;
  state_->add_ref();
  holds_ref_ = true;
  return true;
}

}  // namespace wire::detail
