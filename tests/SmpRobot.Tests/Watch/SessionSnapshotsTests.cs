using SmpRobot.Controller;
using Microsoft.Extensions.Logging.Abstractions;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Tests.Watch;

public class SessionSnapshotsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    /// <summary>A build function that counts its calls and can be held.</summary>
    private sealed class CountingBuilder
    {
        private int _builds;
        public ManualResetEventSlim Gate { get; } = new(initialState: true);
        public int Builds => Volatile.Read(ref _builds);
        public SessionPhase Phase { get; set; } = SessionPhase.Running;

        public SessionSnapshot Build(string id)
        {
            if (id == "missing") throw new RefusedException(RefusalKind.NotFound, "no session 'missing'");
            Gate.Wait(Timeout);
            var n = Interlocked.Increment(ref _builds);
            var record = new SessionRecord(id, "plan", "sim", Phase, "", n, 0, DateTimeOffset.UnixEpoch, null, null);
            return new SessionSnapshot(record, new DotTally(10, 10 - n, 0, n, 0, 0), [], n, 0);
        }
    }

    private static SessionSnapshots Hub(CountingBuilder builder) =>
        new(builder.Build, TimeProvider.System, NullLogger.Instance, refreshEvery: TimeSpan.FromHours(1), minWatchInterval: TimeSpan.FromMilliseconds(20));

    [Fact]
    public async Task Every_watcher_shares_one_build_per_change()
    {
        var builder = new CountingBuilder();
        await using var hub = Hub(builder);
        using var cts = new CancellationTokenSource(Timeout);
        var watchers = Enumerable.Range(0, 100).Select(_ => hub.WatchAsync("s1", _ => false, cts.Token).GetAsyncEnumerator(cts.Token)).ToList();
        try
        {
            await Task.WhenAll(watchers.Select(w => w.MoveNextAsync().AsTask())).WaitAsync(Timeout);
            Assert.Equal(1, builder.Builds);
            Assert.All(watchers, w => Assert.Same(watchers[0].Current.Snapshot, w.Current.Snapshot));

            hub.Changed();
            await Task.WhenAll(watchers.Select(w => w.MoveNextAsync().AsTask())).WaitAsync(Timeout);
            Assert.Equal(2, builder.Builds);
            Assert.All(watchers, w => Assert.Same(watchers[0].Current.Snapshot, w.Current.Snapshot));
            Assert.True(watchers[0].Current.Version > 0);
        }
        finally
        {
            await cts.CancelAsync();
            foreach (var w in watchers) await w.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_slow_watcher_gets_the_latest_state_not_a_backlog()
    {
        var builder = new CountingBuilder();
        await using var hub = Hub(builder);
        using var cts = new CancellationTokenSource(Timeout);
        await using var slow = hub.WatchAsync("s1", _ => false, cts.Token).GetAsyncEnumerator(cts.Token);
        await using var fast = hub.WatchAsync("s1", _ => false, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await slow.MoveNextAsync().AsTask().WaitAsync(Timeout));
        Assert.True(await fast.MoveNextAsync().AsTask().WaitAsync(Timeout));
        for (var change = 0; change < 5; change++)
        {
            var before = fast.Current.Version;
            hub.Changed();
            Assert.True(await fast.MoveNextAsync().AsTask().WaitAsync(Timeout));
            Assert.True(fast.Current.Version > before);
        }
        Assert.True(await slow.MoveNextAsync().AsTask().WaitAsync(Timeout));
        Assert.Equal(fast.Current.Version, slow.Current.Version);
        Assert.Same(fast.Current.Snapshot, slow.Current.Snapshot);
    }

    [Fact]
    public async Task Announcing_a_change_never_builds_on_the_callers_thread()
    {
        var builder = new CountingBuilder();
        await using var hub = Hub(builder);
        using var cts = new CancellationTokenSource(Timeout);
        await using var watcher = hub.WatchAsync("s1", _ => false, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watcher.MoveNextAsync().AsTask().WaitAsync(Timeout));
        builder.Gate.Reset(); // every build now blocks
        try
        {
            // Would block (and time out) if Changed built the snapshot itself.
            await Task.Run(() =>
            {
                for (var i = 0; i < 100; i++) hub.Changed();
            }).WaitAsync(TimeSpan.FromSeconds(5));
            var next = watcher.MoveNextAsync().AsTask();
            Assert.False(next.IsCompleted);
            builder.Gate.Set();
            Assert.True(await next.WaitAsync(Timeout));
            // A hundred changes while one build was held: published as few builds, not a hundred.
            Assert.InRange(builder.Builds, 2, 4);
        }
        finally
        {
            builder.Gate.Set();
        }
    }

    [Fact]
    public async Task Get_serves_the_shared_snapshot_until_something_changes()
    {
        var builder = new CountingBuilder();
        await using var hub = new SessionSnapshots(builder.Build, TimeProvider.System, NullLogger.Instance, refreshEvery: TimeSpan.FromHours(1));
        using var cts = new CancellationTokenSource(Timeout);
        await using var watcher = hub.WatchAsync("s1", _ => false, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watcher.MoveNextAsync().AsTask().WaitAsync(Timeout));
        var builds = builder.Builds;
        var got = hub.Get("s1");
        // Either the shared one (fresh enough) or one new build; never one per call.
        for (var i = 0; i < 50; i++) hub.Get("s1");
        Assert.InRange(builder.Builds, builds, builds + 2);
        hub.Changed();
        var after = hub.Get("s1");
        Assert.NotSame(got, after);
        Assert.True(after.ElapsedSeconds > got.ElapsedSeconds);
        // A session nobody watches is built for each reader (nothing is kept for it).
        var other = builder.Builds;
        hub.Get("s2");
        hub.Get("s2");
        Assert.Equal(other + 2, builder.Builds);
    }

    [Fact]
    public async Task Watching_an_unknown_session_fails_and_a_final_snapshot_ends_the_watch()
    {
        var builder = new CountingBuilder();
        await using var hub = Hub(builder);
        using var cts = new CancellationTokenSource(Timeout);
        await using var missing = hub.WatchAsync("missing", _ => false, cts.Token).GetAsyncEnumerator(cts.Token);
        await Assert.ThrowsAsync<RefusedException>(() => missing.MoveNextAsync().AsTask().WaitAsync(Timeout));

        await using var watcher = hub.WatchAsync("s1", s => s.Record.Phase == SessionPhase.Completed, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watcher.MoveNextAsync().AsTask().WaitAsync(Timeout));
        builder.Phase = SessionPhase.Completed;
        hub.Changed();
        Assert.True(await watcher.MoveNextAsync().AsTask().WaitAsync(Timeout));
        Assert.Equal(SessionPhase.Completed, watcher.Current.Snapshot.Record.Phase);
        Assert.False(await watcher.MoveNextAsync().AsTask().WaitAsync(Timeout));
    }
}
