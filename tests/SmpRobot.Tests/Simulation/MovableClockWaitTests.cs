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

    [Fact]
    public async Task A_move_within_the_tolerance_waits_the_whole_delay_counted_from_the_timer_start()
    {
        var clock = new FakeTimeProvider();
        var computedAt = clock.GetTimestamp();
        clock.Advance(TimeSpan.FromMilliseconds(ClockMovedToleranceMs / 2));

        var wait = WaitForSignalOrDelayAsync(clock, computedAt, TimeSpan.FromMilliseconds(10), Never(), CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(9.9));
        Assert.False(wait.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(0.1));

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
}
