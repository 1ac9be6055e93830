// wire/wire.hpp — everything in libwire.
#pragma once

#include "wire/address.hpp"
#include "wire/async_socket.hpp"
#include "wire/buffer.hpp"
#include "wire/connect.hpp"
#include "wire/echo.hpp"
#include "wire/error.hpp"
#include "wire/loop.hpp"
#include "wire/relay.hpp"
#include "wire/selector.hpp"
#include "wire/server.hpp"
#include "wire/socket.hpp"
#include "wire/stream.hpp"
#include "wire/task.hpp"
#include "wire/http/parser.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"
