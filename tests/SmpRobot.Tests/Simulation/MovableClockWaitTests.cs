using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Gantry.Simulation;
using static SmpRobot.Controller.Gantry.Simulation.MovableClockWait;

namespace SmpRobot.Tests.Simulation;

/// <summary>
/// <see cref="MovableClockWait"/> on a FakeTimeProvider: the clock moves only when the test advances it,
/// so each case is deterministic; every await is bounded by <see cref="Bound"/> of wall time.
/// </summary>
public class MovableClockWaitTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_clock_moved_after_the_delay_was_computed_returns_at_once()
    {
        var clock = new FakeTimeProvider();
        var computedAt = clock.GetTimestamp();
        clock.Advance(TimeSpan.FromMilliseconds(5)); // another thread moves the clock before the timer starts

        // Without the check the timer would count 10 ms from now and, on a clock nobody advances again, never end.
        var outcome = await WaitForSignalOrDelayAsync(clock, computedAt, TimeSpan.FromMilliseconds(10), Never(), CancellationToken.None).WaitAsync(Bound);

        Assert.Equal(Outcome.ClockMoved, outcome);
    }

    [Theory]
    [InlineData(1.0)] // a test that advances by exactly the last millisecond of a delay
    [InlineData(0.0001)] // one tick
    public async Task On_a_clock_that_only_moves_when_told_any_move_returns_at_once(double movedMs)
    {
        var clock = new FakeTimeProvider();
        var computedAt = clock.GetTimestamp();
        clock.Advance(TimeSpan.FromMilliseconds(movedMs));

        var outcome = await WaitForSignalOrDelayAsync(clock, computedAt, TimeSpan.FromMilliseconds(10), Never(), CancellationToken.None).WaitAsync(Bound);

        Assert.Equal(Outcome.ClockMoved, outcome);
    }

    [Fact]
    public async Task A_clock_that_runs_by_itself_may_move_within_the_tolerance_and_the_wait_goes_on()
    {
        var clock = new TickingClock();
        var computedAt = clock.GetTimestamp();

        var wait = WaitForSignalOrDelayAsync(clock, computedAt, TimeSpan.FromMilliseconds(10), Never(), CancellationToken.None);
        Assert.False(wait.IsCompleted); // it moved by a few microseconds since computedAt: not stale
        clock.Advance(TimeSpan.FromMilliseconds(10));

        Assert.Equal(Outcome.DelayElapsed, await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task The_delay_ends_the_wait_when_the_clock_reaches_it()
    {
        var clock = new FakeTimeProvider();
        var wait = WaitForSignalOrDelayAsync(clock, clock.GetTimestamp(), TimeSpan.FromMilliseconds(10), Never(), CancellationToken.None);

        clock.Advance(TimeSpan.FromMilliseconds(9));
        Assert.False(wait.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Equal(Outcome.DelayElapsed, await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task A_signal_ends_the_wait_before_the_delay()
    {
        var clock = new FakeTimeProvider();
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var wait = WaitForSignalOrDelayAsync(clock, clock.GetTimestamp(), TimeSpan.FromHours(1), signal.Task, CancellationToken.None);
        Assert.False(wait.IsCompleted);

        signal.SetResult();

        Assert.Equal(Outcome.Signalled, await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task Without_a_delay_a_moved_clock_does_not_end_the_wait_only_the_signal_does()
    {
        var clock = new FakeTimeProvider();
        var computedAt = clock.GetTimestamp();
        clock.Advance(TimeSpan.FromHours(1));
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var wait = WaitForSignalOrDelayAsync(clock, computedAt, Timeout.InfiniteTimeSpan, signal.Task, CancellationToken.None);
        clock.Advance(TimeSpan.FromDays(1));
        Assert.False(wait.IsCompleted);
        signal.SetResult();

        Assert.Equal(Outcome.Signalled, await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task Cancellation_ends_the_wait_without_throwing()
    {
        var clock = new FakeTimeProvider();
        using var cts = new CancellationTokenSource();
        var wait = WaitForSignalOrDelayAsync(clock, clock.GetTimestamp(), TimeSpan.FromHours(1), Never(), cts.Token);
        Assert.False(wait.IsCompleted);

        await cts.CancelAsync();

        Assert.Equal(Outcome.Cancelled, await wait.WaitAsync(Bound));
    }

    private static Task Never() => new TaskCompletionSource().Task;

    /// <summary>A fake clock that also runs by itself: each read of its timestamp is 1 µs later than the one before (its timers still follow Advance).</summary>
    private sealed class TickingClock : FakeTimeProvider
    {
        private long _reads;

        public override long GetTimestamp() => base.GetTimestamp() + (Interlocked.Increment(ref _reads) * 10); // 10 ticks: 1 µs
    }
}
