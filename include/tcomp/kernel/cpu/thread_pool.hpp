// A small persistent thread pool for the CPU kernels: the caller chooses how many threads a call uses
// (matmul_options::threads), the calling thread takes part, and workers are created once and reused so a
// GEMV that takes half a millisecond does not pay thread start-up on every call.
//
// Threads are not pinned: pinning schemes that assume SMT sibling pairs put both threads on one core of a
// 2-vCPU machine; the OS scheduler spreads runnable threads over idle cores by itself.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tcomp/core/config.hpp"

namespace tcomp::cpu {

class thread_pool {
public:
    /// The process-wide pool the kernels use.
    static thread_pool& instance() {
        static thread_pool pool;
        return pool;
    }

    thread_pool() = default;
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    /// Runs fn(task) for task in [0, tasks) on `threads` threads (the caller included) and returns when all
    /// are done. The first exception a task throws is rethrown here. Calls from inside a task run serially.
    void run(int threads, index_t tasks, const std::function<void(index_t)>& fn) {
        if (tasks <= 0) return;
        threads = static_cast<int>(std::min<index_t>(std::max(threads, 1), tasks));
        if (threads == 1 || inside_task()) {
            for (index_t t = 0; t < tasks; ++t) fn(t);
            return;
        }
        std::lock_guard<std::mutex> serial(run_mutex_);  // one parallel call at a time
        ensure_workers(threads - 1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = &fn;
            job_tasks_ = tasks;
            next_task_.store(0, std::memory_order_relaxed);
            wanted_workers_ = threads - 1;
            finished_workers_.store(0, std::memory_order_relaxed);
            error_ = nullptr;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        work_loop();
        // Wait for the workers of this job (spin briefly: jobs are short).
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
        while (finished_workers_.load(std::memory_order_acquire) < wanted_workers_) {
            if (std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(mutex_);
                done_.wait(lock, [&] { return finished_workers_.load(std::memory_order_acquire) >= wanted_workers_; });
                break;
            }
        }
        std::exception_ptr error;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = nullptr;
            error = error_;
        }
        if (error) std::rethrow_exception(error);
    }

    /// Worker threads started so far (the pool grows to the largest thread count asked for, minus one).
    int workers() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return static_cast<int>(workers_.size());
    }

private:
    static bool& inside_task() {
        thread_local bool inside = false;
        return inside;
    }

    void ensure_workers(int n) {
        std::lock_guard<std::mutex> lock(mutex_);
        while (static_cast<int>(workers_.size()) < n) {
            const int id = static_cast<int>(workers_.size());
            // The worker starts from the current generation: the job about to be published is new to it.
            const std::uint64_t generation = generation_.load(std::memory_order_acquire);
            workers_.emplace_back([this, id, generation] { worker_main(id, generation); });
        }
    }

    void work_loop() {
        inside_task() = true;
        for (;;) {
            const index_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
            if (t >= job_tasks_) break;
            try {
                (*job_)(t);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
        inside_task() = false;
    }

    void worker_main(int id, std::uint64_t seen) {
        for (;;) {
            // Spin a little for the next job before sleeping: back-to-back kernel calls are common.
            const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
            while (generation_.load(std::memory_order_acquire) == seen &&
                   std::chrono::steady_clock::now() < spin_until) {
            }
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                seen = generation_.load(std::memory_order_acquire);
                if (stop_) return;
                if (id >= wanted_workers_ || job_ == nullptr) continue;
            }
            work_loop();
            {
                std::lock_guard<std::mutex> lock(mutex_);
                finished_workers_.fetch_add(1, std::memory_order_release);
            }
            done_.notify_one();
        }
    }

    mutable std::mutex mutex_;
    std::mutex run_mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    std::atomic<std::uint64_t> generation_{0};
    const std::function<void(index_t)>* job_ = nullptr;
    index_t job_tasks_ = 0;
    std::atomic<index_t> next_task_{0};
    int wanted_workers_ = 0;
    std::atomic<int> finished_workers_{0};
    std::exception_ptr error_;
    bool stop_ = false;
};

}  // namespace tcomp::cpu
