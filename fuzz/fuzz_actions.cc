// The bodies of the management actions (DoAction, and the HTTP admin calls that map onto
// them): the first line of the input names the action, the rest is its body. Every body
// parser is also fed the whole input, so that a body the mutator grows reaches all of them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/action_body.h"

namespace {

const char* const kTypes[] = {"delete",  "delete-prefix", "invalidate-tag", "entries",
                              "shrink",  "invalidate",    "config-set"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  if (newline != std::string::npos) {
    (void)quiver::ParseActionBody(input.substr(0, newline), input.substr(newline + 1));
  }
  for (const char* type : kTypes) (void)quiver::ParseActionBody(type, input);
  return 0;
}
