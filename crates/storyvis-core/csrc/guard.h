// What storyvis' C++ files share: every exported function catches libtorch's exceptions and
// reports them as a non-zero return with the message in the caller's `err` buffer.
#pragma once

#include <cstring>
#include <exception>

namespace storyvis {

inline void copy_message(const char* what, char* err, size_t len) {
  if (err == nullptr || len == 0) return;
  std::strncpy(err, what, len - 1);
  err[len - 1] = '\0';
}

}  // namespace storyvis

// Runs the statements given; returns 0, or 1 with the exception's message in `err` (the
// function's `char* err, size_t err_len` parameters).
#define STORYVIS_GUARD(...)                                          \
  try {                                                              \
    __VA_ARGS__;                                                     \
    return 0;                                                        \
  } catch (const std::exception& e) {                                \
    storyvis::copy_message(e.what(), err, err_len);                  \
    return 1;                                                        \
  } catch (...) {                                                    \
    storyvis::copy_message("unknown C++ exception", err, err_len);   \
    return 1;                                                        \
  }
