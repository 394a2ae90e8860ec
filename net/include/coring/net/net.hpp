// coring::net: TCP on the event loop (addresses, listener, stream, buffered
// reads, the echo server, an HTTP/1.0 GET client).
#pragma once

#include "coring/net/address.hpp"
#include "coring/net/buffered_reader.hpp"
#include "coring/net/detail/service.hpp"
#include "coring/net/echo_server.hpp"
#include "coring/net/http_client.hpp"
#include "coring/net/tcp_listener.hpp"
#include "coring/net/tcp_stream.hpp"
