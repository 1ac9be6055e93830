// wire/http/download.hpp — an HTTP response body into a file, created only once there is
// something to write, resumable after an interruption.
//
//   wire::http::Client client;
//   wire::http::ClientRequest get{.url = "http://127.0.0.1:8000/big.iso"};
//   auto result = wire::http::download(client, get, "big.iso", {.resume = true});
//   if (result.already_complete) ...;  // else result.response.status is 200 or 206
//
// The file is opened when the final response's head arrives, so a refused connection or a
// bad URL leaves no empty file behind. With `resume`, a file already there is continued:
// Range from its size, and If-Range with the validator (the strong ETag, else the
// Last-Modified date) saved with the file in the extended attribute `user.wire.validator`
// when it was first written. A server that answers 200 (it ignores ranges, or the file
// changed) gets the whole file written afresh; a 206 must start exactly at the file's size
// or the download is refused, so a file is never spliced from two versions. Write errors
// (a full disk) are wire::Error, like network errors; a partial file stays, to be resumed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wire/http/client.hpp"

namespace wire::http {

struct DownloadOptions {
  bool resume = false;  // continue the file at `path` if it exists
  // An error status (>= 400): write its body to the file anyway (curl's default) or leave
  // the file alone (curl --fail).
  bool write_error_body = true;
  // Progress, trace: passed on to Client::send (on_body is called after each write).
  ResponseHandlers handlers = {};
};

struct DownloadResult {
  ClientResponse response;
  std::uint64_t written = 0;       // bytes written to the file by this call
  std::uint64_t resumed_from = 0;  // the size the file was continued from (0: written afresh)
  bool already_complete = false;   // resume found the whole file there (a 416 saying so)
  bool file_written = false;       // the file was created or changed
};

DownloadResult download(Client& client, ClientRequest request, const std::string& path,
                        const DownloadOptions& options = {});

// The file name a URL's path ends with, as curl -O takes it ("http://h/a/b.txt?x" ->
// "b.txt"), percent-decoded. Throws wire::Error (errc::invalid_address) when there is none
// that is safe to create in the current folder: empty, ".", "..", or with a '/' or a NUL.
std::string file_name_from_url(std::string_view url);

}  // namespace wire::http
