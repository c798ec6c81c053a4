using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Sessions;

/// <summary>One snapshot of a session as published to every watcher.</summary>
/// <param name="Version">The change count it reflects (see <see cref="SessionSnapshots.Changed"/>); later publications have higher versions.</param>
/// <param name="Snapshot">The session, built once for every watcher.</param>
/// <param name="BuiltTimestamp">TimeProvider timestamp at which it was built.</param>
public sealed record PublishedSnapshot(long Version, SessionSnapshot Snapshot, long BuiltTimestamp);

/// <summary>
/// Session snapshots for watchers and readers: a snapshot is built once per change (adjacent changes
/// coalesce) by one publisher loop and shared by every watcher of that session; a watcher that is
/// slow to read gets the latest publication when it is ready, never a queue. Nothing here runs on
/// the caller's thread when a change is announced (<see cref="Changed"/> only counts and signals),
/// so the session runner and the safety path never wait for watchers.
/// </summary>
/// <remarks>
/// Threads: <see cref="Changed"/> from anywhere; the publisher loop on the thread pool (one at a
/// time); watchers' async loops on the thread pool. <c>_gate</c> guards the entries and is never
/// held while a snapshot is built or a watcher is resumed.
/// </remarks>
public sealed partial class SessionSnapshots : IAsyncDisposable
{
    /// <summary>Default: watched sessions are published at least this often (elapsed time and machine status move on their own).</summary>
    public static readonly TimeSpan DefaultRefreshEvery = TimeSpan.FromMilliseconds(500);

    /// <summary>Default: a watcher gets at most one snapshot this often.</summary>
    public static readonly TimeSpan DefaultMinWatchInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>A reader's <see cref="Get"/> is served from the latest publication only when it is this fresh and no change happened since.</summary>
    public static readonly TimeSpan MaxCachedAge = TimeSpan.FromMilliseconds(50);

    /// <summary>Changes closer together than this are published once, after the last.</summary>
    private static readonly TimeSpan CoalesceWindow = TimeSpan.FromMilliseconds(10);

    private readonly Func<string, SessionSnapshot> _build;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _signal = new(0, 1);
    private readonly Task _publisher;
    private readonly TimeSpan RefreshEvery;
    private readonly TimeSpan MinWatchInterval;
    private long _version;
    private int _disposed;

    /// <param name="build">Builds a session's snapshot now (reads the ledger); throws for an unknown session.</param>
    /// <param name="timeProvider">Clock of the intervals.</param>
    /// <param name="log">Where build failures are logged.</param>
    /// <param name="refreshEvery">Default <see cref="DefaultRefreshEvery"/>.</param>
    /// <param name="minWatchInterval">Default <see cref="DefaultMinWatchInterval"/>.</param>
    public SessionSnapshots(Func<string, SessionSnapshot> build, TimeProvider timeProvider, ILogger log, TimeSpan? refreshEvery = null, TimeSpan? minWatchInterval = null)
    {
        RefreshEvery = refreshEvery ?? DefaultRefreshEvery;
        MinWatchInterval = minWatchInterval ?? DefaultMinWatchInterval;
        _build = build;
        _time = timeProvider;
        _log = log;
        _publisher = Task.Run(PublishLoopAsync);
    }

    /// <summary>Announces that some session changed: cheap and non-blocking (a count and a signal).</summary>
    public void Changed()
    {
        Interlocked.Increment(ref _version);
        Signal();
    }

    /// <summary>
    /// The session now: the latest publication when nothing changed since and it is younger than
    /// <see cref="MaxCachedAge"/>, else a fresh build (which is kept for the next reader).
    /// </summary>
    public SessionSnapshot Get(string sessionId)
    {
        var version = Interlocked.Read(ref _version);
        lock (_gate)
        {
            if (_entries.TryGetValue(sessionId, out var entry))
            {
                foreach (var candidate in (ReadOnlySpan<PublishedSnapshot?>)[entry.Latest, entry.ForReaders])
                {
                    if (candidate is { } c && c.Version == version && _time.GetElapsedTime(c.BuiltTimestamp) <= MaxCachedAge) return c.Snapshot;
                }
            }
        }
        var built = _build(sessionId);
        lock (_gate)
        {
            // Kept only for sessions someone watches (their entry exists), and not published to the
            // watchers: they get a snapshot per change or refresh, not per reader.
            if (_entries.TryGetValue(sessionId, out var entry) && (entry.ForReaders is null || entry.ForReaders.Version <= version))
            {
                entry.ForReaders = new PublishedSnapshot(version, built, _time.GetTimestamp());
            }
        }
        return built;
    }

    /// <summary>
    /// Publications of a session: the current one at once, then the latest after every change (at
    /// most every <c>minWatchInterval</c>) and at least every <c>refreshEvery</c>,
    /// until <paramref name="isLast"/> says so for a yielded one or the caller cancels.
    /// Throws (from the first build) for an unknown session, and <see cref="Storage.StoreUnavailableException"/> when the
    /// record store cannot be read for a publication (a watcher is never left on a state nobody can measure now).
    /// </summary>
    public async IAsyncEnumerable<PublishedSnapshot> WatchAsync(string sessionId, Func<SessionSnapshot, bool> isLast, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(isLast);
        Entry entry;
        lock (_gate)
        {
            if (!_entries.TryGetValue(sessionId, out entry!))
            {
                entry = new Entry();
                _entries[sessionId] = entry;
            }
            entry.Watchers++;
        }
        try
        {
            var first = await CurrentAsync(sessionId, entry).ConfigureAwait(false);
            yield return first;
            if (isLast(first.Snapshot)) yield break;
            var sentAt = _time.GetTimestamp();
            var sentPublication = first;
            while (!cancellationToken.IsCancellationRequested)
            {
                Task next;
                PublishedSnapshot? latest;
                Storage.StoreUnavailableException? failed;
                lock (_gate)
                {
                    latest = entry.Latest;
                    next = entry.Next.Task;
                    failed = entry.Failure;
                }
                // The record store cannot be read: the watch ends with its reason rather than go quiet on a state it can no longer measure.
                if (failed is not null) throw failed;
                if (ReferenceEquals(latest, sentPublication) || latest is null)
                {
                    try
                    {
                        await next.WaitAsync(cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        yield break;
                    }
                    continue;
                }
                var wait = MinWatchInterval - _time.GetElapsedTime(sentAt);
                if (wait > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        yield break;
                    }
                    lock (_gate) latest = entry.Latest!;
                }
                sentAt = _time.GetTimestamp();
                sentPublication = latest;
                yield return latest;
                if (isLast(latest.Snapshot)) yield break;
            }
        }
        finally
        {
            lock (_gate)
            {
                if (--entry.Watchers == 0) _entries.Remove(sessionId);
            }
        }
    }

    /// <summary>Ends the publisher loop.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _publisher.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
        _stop.Dispose();
        _signal.Dispose();
    }

    /// <summary>The entry's publication now: the latest when up to date, else one build shared by every watcher that starts meanwhile.</summary>
    private async Task<PublishedSnapshot> CurrentAsync(string sessionId, Entry entry)
    {
        var version = Interlocked.Read(ref _version);
        TaskCompletionSource<PublishedSnapshot> mine;
        Task<PublishedSnapshot>? building;
        lock (_gate)
        {
            if (entry.Latest is { } latest && latest.Version == version && _time.GetElapsedTime(latest.BuiltTimestamp) <= RefreshEvery) return latest;
            building = entry.FirstBuild;
            mine = new TaskCompletionSource<PublishedSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (building is null) entry.FirstBuild = mine.Task;
        }
        if (building is not null) return await building.ConfigureAwait(false);
        try
        {
            var built = _build(sessionId);
            PublishedSnapshot published;
            lock (_gate)
            {
                if (entry.Latest is null || entry.Latest.Version <= version)
                {
                    entry.Publish(new PublishedSnapshot(version, built, _time.GetTimestamp()));
                }
                published = entry.Latest!;
                entry.FirstBuild = null;
            }
            mine.SetResult(published);
            return published;
        }
        catch (Exception e)
        {
            lock (_gate) entry.FirstBuild = null;
            mine.SetException(e);
            throw;
        }
    }

    private void Signal()
    {
        // At most one pending signal: the publisher looks at everything that changed when it wakes.
        if (_signal.CurrentCount == 0)
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another thread signalled first.
            }
            catch (ObjectDisposedException)
            {
                // Shutting down.
            }
        }
    }

    private async Task PublishLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                using var either = CancellationTokenSource.CreateLinkedTokenSource(token);
                var signalled = _signal.WaitAsync(either.Token);
                var refresh = Task.Delay(RefreshEvery, _time, either.Token);
                var first = await Task.WhenAny(signalled, refresh).ConfigureAwait(false);
                // The other wait ends (a signal not taken stays for the next round).
                await either.CancelAsync().ConfigureAwait(false);
                token.ThrowIfCancellationRequested();
                if (first == signalled && signalled.IsCompletedSuccessfully) await Task.Delay(CoalesceWindow, _time, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            PublishAll();
        }
    }

    /// <summary>Builds and publishes every watched session once.</summary>
    private void PublishAll()
    {
        string[] watched;
        lock (_gate) watched = [.. _entries.Keys];
        foreach (var id in watched)
        {
            var version = Interlocked.Read(ref _version);
            SessionSnapshot built;
            try
            {
                built = _build(id);
            }
            catch (Storage.StoreUnavailableException e)
            {
                Log.BuildFailed(_log, id, e.Message);
                lock (_gate)
                {
                    if (_entries.TryGetValue(id, out var entry)) entry.Fail(e);
                }
                continue;
            }
            catch (Exception e) when (e is RefusedException or InvalidOperationException or ObjectDisposedException)
            {
                Log.BuildFailed(_log, id, e.Message);
                continue;
            }
            lock (_gate)
            {
                if (!_entries.TryGetValue(id, out var entry)) continue;
                if (entry.Latest is not null && entry.Latest.Version > version) continue;
                entry.Publish(new PublishedSnapshot(version, built, _time.GetTimestamp()));
            }
        }
    }

    private sealed class Entry
    {
        public int Watchers;
        public PublishedSnapshot? Latest;
        public Task<PublishedSnapshot>? FirstBuild;
        public PublishedSnapshot? ForReaders;
        public TaskCompletionSource Next = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Set when the last build failed because the record store is unreachable; cleared by the next publication.</summary>
        public Storage.StoreUnavailableException? Failure;

        /// <summary>Caller holds the hub's gate. Wakes the watchers waiting for this publication.</summary>
        public void Publish(PublishedSnapshot snapshot)
        {
            Latest = snapshot;
            Failure = null;
            var woken = Next;
            Next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            woken.TrySetResult();
        }

        /// <summary>Caller holds the hub's gate. The session could not be built (the store is away): its watchers end with the reason.</summary>
        public void Fail(Storage.StoreUnavailableException e)
        {
            Failure = e;
            var woken = Next;
            Next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            woken.TrySetResult();
        }
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Could not build the snapshot of session {SessionId}: {Message}")]
        public static partial void BuildFailed(ILogger log, string sessionId, string message);
    }
}
