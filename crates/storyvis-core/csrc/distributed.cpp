// libtorch's distributed engine (c10d), the one torch.distributed runs on: a TCP store for the
// rendezvous (torchrun's MASTER_ADDR / MASTER_PORT) and a process group over it: gloo for CPU
// tensors (and CUDA tensors through host copies), NCCL for CUDA tensors where the loaded
// libtorch has it. A C interface of plain ints and opaque handles, like precision.cpp; every
// function catches libtorch's exceptions (a collective that times out, a peer that closed its
// connection) and reports them as a non-zero return with the message in `err`.
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <dlfcn.h>

#include "guard.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

// The wheel ships ProcessGroupGloo.hpp but not the gloo headers it includes, so the two members
// used here are declared as that header declares them (torch/csrc/distributed/c10d/
// ProcessGroupGloo.hpp: `Options::create_default` and the constructor); both are exported by
// libtorch_cpu.so. The destructor is declared out of line, as there, so that this file emits no
// virtual table of its own: every virtual call goes to libtorch's.
namespace c10d {
class ProcessGroupGloo : public Backend {
 public:
  struct Options : public Backend::Options {
    static c10::intrusive_ptr<Options> create_default(std::chrono::milliseconds timeout);
  };
  ProcessGroupGloo(const c10::intrusive_ptr<Store>& store, int rank, int size, c10::intrusive_ptr<Options> options);
  ~ProcessGroupGloo() override;
};
}  // namespace c10d

namespace {

// The object's size is not known here (its members are gloo types): it is built in a block
// far larger than any libtorch release's ProcessGroupGloo (under 1 KiB), which its virtual
// deleting destructor frees with operator delete like any other.
constexpr size_t kBackendBlock = 64 * 1024;

c10::intrusive_ptr<c10d::Backend> new_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
  void* block = ::operator new(kBackendBlock);
  std::memset(block, 0, kBackendBlock);
  c10d::ProcessGroupGloo* pg;
  try {
    pg = new (block) c10d::ProcessGroupGloo(store, rank, size, options);
  } catch (...) {
    ::operator delete(block);
    throw;
  }
  // The constructor leaves the count at 0; intrusive_ptr takes the first reference.
  return c10::intrusive_ptr<c10d::Backend>::unsafe_steal_from_new(pg);
}

// NCCL's process group lives in libtorch_cuda.so, which a CPU build of libtorch does not have:
// its symbols are looked up at run time. The constructor, like gloo's, takes (store, rank,
// size, options); its options come from `ProcessGroupNCCL::Options::Options(bool)` (bool: a
// high-priority stream). Itanium C++ ABI: `this` first; class arguments with non-trivial
// destructors passed by value go as pointers to caller-owned copies.
using NcclOptionsCtor = void (*)(void* self, bool high_priority);
using NcclCtor = void (*)(void* self, c10::intrusive_ptr<c10d::Store>* store, int rank, int size, c10::intrusive_ptr<c10d::Backend::Options>* options);
constexpr const char* kNcclOptionsCtor = "_ZN4c10d16ProcessGroupNCCL7OptionsC1Eb";
constexpr const char* kNcclCtor =
    "_ZN4c10d16ProcessGroupNCCLC1EN3c1013intrusive_ptrINS_5StoreENS1_6detail34intrusive_target_default_null_typeIS3_EEEEiiNS2_INS0_7OptionsENS5_IS8_EEEE";

c10::intrusive_ptr<c10d::Backend> new_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, std::chrono::milliseconds timeout) {
  void* lib = dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_NOLOAD);
  if (lib == nullptr) lib = dlopen("libtorch_cuda.so", RTLD_NOW);
  if (lib == nullptr) throw std::runtime_error("NCCL needs a CUDA build of libtorch (libtorch_cuda.so did not load)");
  auto options_ctor = reinterpret_cast<NcclOptionsCtor>(dlsym(lib, kNcclOptionsCtor));
  auto ctor = reinterpret_cast<NcclCtor>(dlsym(lib, kNcclCtor));
  if (options_ctor == nullptr || ctor == nullptr) throw std::runtime_error("this libtorch_cuda.so has no ProcessGroupNCCL (built without NCCL?)");
  void* opt_block = ::operator new(kBackendBlock);
  std::memset(opt_block, 0, kBackendBlock);
  options_ctor(opt_block, false);
  auto* base = static_cast<c10d::Backend::Options*>(opt_block);
  base->timeout = timeout;
  auto options = c10::intrusive_ptr<c10d::Backend::Options>::unsafe_steal_from_new(base);
  void* block = ::operator new(kBackendBlock);
  std::memset(block, 0, kBackendBlock);
  auto store_copy = store;
  try {
    ctor(block, &store_copy, rank, size, &options);
  } catch (...) {
    ::operator delete(block);
    throw;
  }
  return c10::intrusive_ptr<c10d::Backend>::unsafe_steal_from_new(static_cast<c10d::Backend*>(block));
}

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

}  // namespace

extern "C" {

// Joins the group `world` processes make through the TCP store at host:port, with `backend` 0:
// gloo, 1: NCCL; every collective and store wait gives up after `timeout_ms`. `serve`: this
// process hosts the store (rank 0, unless a launcher's agent already does, as torchrun's
// does); keys go under `prefix` (a launcher's store outlives a restart of the ranks).
int storyvis_dist_init(const char* host, int port, int rank, int world, int serve, const char* prefix, int backend, long long timeout_ms, void** out, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = serve != 0;
    // Every rank counts itself in; the host waits until all have.
    opts.numWorkers = static_cast<size_t>(world);
    opts.waitWorkers = true;
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    auto* g = new Group{store, {}, timeout};
    try {
      g->backend = backend == 1 ? new_nccl(store, rank, world, timeout) : new_gloo(store, rank, world, timeout);
    } catch (...) {
      delete g;
      throw;
    }
    *out = g;
  })
}

void storyvis_dist_free(void* group) { delete static_cast<Group*>(group); }

// Hosts a TCP store at port, as a launcher's agent does (torchrun's), for ranks that join it as
// clients; freed by storyvis_dist_store_free.
int storyvis_dist_store_host(int port, long long timeout_ms, void** out, char* err, size_t err_len) {
  STORYVIS_GUARD({
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = true;
    opts.waitWorkers = false;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    *out = new c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts));
  })
}

void storyvis_dist_store_free(void* store) { delete static_cast<c10::intrusive_ptr<c10d::Store>*>(store); }

// In place across the group: `op` 0 the sum, 1 the maximum.
int storyvis_dist_allreduce(void* group, const at::Tensor* t, int op, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = op == 1 ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    o.timeout = g->timeout;
    g->backend->allreduce(ts, o)->wait(g->timeout);
  })
}

// In place: every rank's `t` becomes rank `root`'s.
int storyvis_dist_broadcast(void* group, const at::Tensor* t, int root, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g->timeout;
    g->backend->broadcast(ts, o)->wait(g->timeout);
  })
}

int storyvis_dist_barrier(void* group, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto* g = static_cast<Group*>(group);
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    g->backend->barrier(o)->wait(g->timeout);
  })
}

int storyvis_dist_set(void* group, const char* key, const unsigned char* value, size_t len, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto* g = static_cast<Group*>(group);
    g->store->set(std::string(key), std::vector<uint8_t>(value, value + len));
  })
}

// Waits (up to the group's timeout) for `key`, then copies up to `cap` bytes of its value into
// `value` and its whole length into `len`.
int storyvis_dist_get(void* group, const char* key, unsigned char* value, size_t cap, size_t* len, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto* g = static_cast<Group*>(group);
    auto v = g->store->get(std::string(key));
    *len = v.size();
    std::memcpy(value, v.data(), std::min(cap, v.size()));
  })
}

}  // extern "C"
