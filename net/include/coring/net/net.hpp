// coring::net: TCP on the event loop (addresses, listener, stream, the echo server).
#pragma once

#include "coring/net/address.hpp"
#include "coring/net/detail/service.hpp"
#include "coring/net/echo_server.hpp"
#include "coring/net/tcp_listener.hpp"
#include "coring/net/tcp_stream.hpp"
