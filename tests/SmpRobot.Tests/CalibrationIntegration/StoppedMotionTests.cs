using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Tests.Simulation;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>A motion the caller stops (Ctrl+C in smp cancels the call) is stopped at once on the machine, and a calibration stopped part-way is never stored.</summary>
[Collection(CalibrationCollection.Name)]
public sealed class StoppedMotionTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_gantry_calibration_stopped_by_its_caller_stops_the_gantry_and_stores_nothing()
    {
        await using var c = await CalibrationHost.StartAsync(timeScale: 5);
        await c.HomeAsync();
        var before = await c.Calibration.ListCalibrationsAsync(new ListCalibrationsRequest());
        using var stop = new CancellationTokenSource();
        var call = c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 25, Heights = 2 }, deadline: CalibrationHost.Deadline, cancellationToken: stop.Token).ResponseAsync;
        // Let it travel a few stops, then the engineer presses Ctrl+C.
        await c.Simulator.UntilAsync(g => g.MotionRecord.Count(m => m.Kind == SimMotionKind.Feed || m.Kind == SimMotionKind.Rapid) >= 6, "six calibration moves", Wait);
        await stop.CancelAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => call);
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);

        // The controller stops the motion (feed hold byte) and leaves the gantry idle, not on its way to the next stop.
        await c.Simulator.UntilAsync(g => g.RealtimeLog.Any(b => b.Command == (byte)'!'), "a feed hold", Wait);
        var hold = c.Simulator.RealtimeLog.First(b => b.Command == (byte)'!');
        await c.Simulator.UntilAsync(g => g.State == "Idle", "Idle", Wait);
        Assert.Equal("Idle", c.Simulator.State);
        Assert.All(c.Simulator.MotionRecord.Where(m => m.StartSimSeconds > hold.SimSeconds), m => Assert.True(m.To.X == m.From.X && m.To.Y == m.From.Y && m.To.Z >= m.From.Z, $"{m} after the stop"));
        var after = await c.Calibration.ListCalibrationsAsync(new ListCalibrationsRequest());
        Assert.Equal(before.Calibrations.Count, after.Calibrations.Count);
        Assert.Equal(before.CurrentGantryId, after.CurrentGantryId);
    }

    [Fact]
    public async Task A_jog_stopped_by_its_caller_is_cancelled_on_the_machine()
    {
        await using var c = await CalibrationHost.StartAsync(timeScale: 1);
        await c.HomeAsync();
        using var stop = new CancellationTokenSource();
        var jog = c.Machine.JogAsync(new JogRequest { DxMm = -60, FeedMmPerMin = 600 }, deadline: CalibrationHost.Deadline, cancellationToken: stop.Token).ResponseAsync;
        await c.Simulator.UntilAsync(g => g.State == "Jog", "Jog", Wait);
        Assert.Equal("Jog", c.Simulator.State);
        await stop.CancelAsync();
        await Assert.ThrowsAsync<RpcException>(() => jog);
        await c.Simulator.UntilAsync(g => g.State == "Idle", "Idle", Wait);
        Assert.Equal("Idle", c.Simulator.State);
        var moved = c.Simulator.MotionRecord.Last(m => m.Kind == SimMotionKind.Jog);
        Assert.False(moved.Completed);
        Assert.True(moved.From.X - moved.To.X < 30, $"the jog ran on to {moved.To}");
        Assert.Contains(c.Simulator.RealtimeLog, b => b.Command == 0x85);
    }
}
