using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;

namespace SmpRobot.Tests.Unit;

public class MachineLeaseTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Waiting_for_a_free_machine_ends_when_its_holder_lets_go_and_not_before()
    {
        var time = new FakeTimeProvider();
        var lease = new MachineLease();
        Assert.True(await lease.WaitUntilFreeAsync(TimeSpan.FromSeconds(1), time).WaitAsync(Bound));

        var held = lease.Acquire(MachineUse.Calibration, "gantry calibration", "run the gantry calibration");
        var waiting = lease.WaitUntilFreeAsync(TimeSpan.FromSeconds(15), time);
        time.Advance(TimeSpan.FromSeconds(14));
        Assert.False(waiting.IsCompleted);
        held.Dispose();
        Assert.True(await waiting.WaitAsync(Bound));
        Assert.Null(lease.Holder);
    }

    [Fact]
    public async Task Waiting_for_a_holder_that_never_lets_go_gives_up_at_its_bound()
    {
        var time = new FakeTimeProvider();
        var lease = new MachineLease();
        using var held = lease.Acquire(MachineUse.Surface, "surface probe", "probe the scalp");
        var waiting = lease.WaitUntilFreeAsync(TimeSpan.FromSeconds(15), time);
        time.Advance(TimeSpan.FromSeconds(16));
        Assert.False(await waiting.WaitAsync(Bound));
        Assert.Equal("surface probe", lease.Holder?.What);
    }

    [Fact]
    public void A_shutdown_stops_the_holder_through_its_token_and_refuses_every_later_taker()
    {
        var lease = new MachineLease();
        using var caller = new CancellationTokenSource();
        using var held = lease.Acquire(MachineUse.Jog, "jog", "jog");
        using var holderToken = lease.StopsAtShutdown(caller.Token);
        Assert.Equal("stopped by its caller", lease.StopCause);
        Assert.False(holderToken.IsCancellationRequested);

        lease.BeginShutdown();
        Assert.True(holderToken.IsCancellationRequested);
        Assert.False(caller.IsCancellationRequested);
        Assert.Equal("stopped because the controller is shutting down", lease.StopCause);

        held.Dispose();
        Assert.Null(lease.TryAcquire(MachineUse.Session, "session s-1", out var holder));
        Assert.Equal("the controller is shutting down", holder!.BusyText);
        var refused = Assert.Throws<RefusedException>(() => lease.Acquire(MachineUse.Home, "homing cycle", "home"));
        Assert.Equal("cannot home: the controller is shutting down", refused.Message);
        Assert.Null(lease.Holder);
    }
}
