// wire/async.hpp — the coroutine toolkit on top of EventLoop: task handles and groups,
// Event, Queue, Semaphore, Lock and SendQueue, and open_connection.
#pragma once

#include "wire/async/event.hpp"
#include "wire/async/open_connection.hpp"
#include "wire/async/queue.hpp"
#include "wire/async/semaphore.hpp"
#include "wire/async/send_queue.hpp"
#include "wire/async/task_group.hpp"
#include "wire/async/task_handle.hpp"
#include "wire/loop.hpp"
