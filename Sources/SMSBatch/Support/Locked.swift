import Foundation

/// A value only reached under a lock, as the standard library's `Mutex` holds one, but
/// locked with a pthread mutex. ThreadSanitizer sees pthread locks; it does not see
/// `Synchronization.Mutex` on Linux, which locks with futexes in uninstrumented library
/// code, so every access under one showed as a race (19 reports in `make test-sanitize`,
/// none of them real) and a real race would have been lost among them.
package final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched between pthread_mutex_lock and _unlock.
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    package func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
