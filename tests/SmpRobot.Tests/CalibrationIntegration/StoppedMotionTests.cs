using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Storage;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Tests.Simulation;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>A motion the caller stops (Ctrl+C in smp cancels the call) is stopped at once on the machine, and a calibration stopped part-way is never stored.</summary>
[Collection(CalibrationCollection.Name)]
public sealed class StoppedMotionTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_calibration_stopped_while_it_measures_stops_the_machine_before_its_activity_ends_and_holds_the_machine_until_then()
    {
        // The camera holds its third frame until the test lets it go: the gantry stands still, the procedure is measuring.
        using var gate = new FrameGate(holdAtRead: 3);
        await using var c = await CalibrationHost.StartAsync(timeScale: 5, wrapCamera: camera => new GatedCamera(camera, gate));
        await c.HomeAsync();
        using var stop = new CancellationTokenSource();
        var call = c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 25, Heights = 2 }, deadline: CalibrationHost.Deadline, cancellationToken: stop.Token).ResponseAsync;
        Assert.True(await Task.Run(() => gate.Held.Wait(Wait)), "the calibration never measured");
        await stop.CancelAsync();
        Assert.Equal(StatusCode.Cancelled, (await Assert.ThrowsAsync<RpcException>(() => call)).StatusCode);

        // The caller has gone, the procedure has not: it still shows, and it still holds the machine.
        var during = await c.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: CalibrationHost.Deadline);
        Assert.Equal("gantry calibration", during.Activity?.Name);
        var jog = await Assert.ThrowsAsync<RpcException>(() => c.Machine.JogAsync(new JogRequest { DxMm = -5 }, deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, jog.StatusCode);

        gate.Release();
        // Once the activity has ended, the stop is done: the hold went out and the needle is up; nothing follows.
        MachineStatus after;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((after = await c.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: CalibrationHost.Deadline)).Activity is not null)
        {
            Assert.True(waited.Elapsed < Wait, "the calibration's activity did not end");
            await Task.Yield();
        }
        var realtime = c.Simulator.RealtimeLog;
        var motions = c.Simulator.MotionRecord;
        Assert.Contains(realtime, b => b.Command == (byte)'!');
        var hold = realtime.First(b => b.Command == (byte)'!');
        var lift = Assert.Single(motions, m => m.StartSimSeconds >= hold.SimSeconds && m.Kind != SimMotionKind.Dwell);
        Assert.True(lift.To.X == lift.From.X && lift.To.Y == lift.From.Y && lift.To.Z > lift.From.Z, $"{lift} is not a lift of the needle");
        Assert.False(after.NeedleOn);
        Assert.False(IsMoving(after.State), $"the gantry reports {after.State} after the stop ({lift})");
        // The machine is free again for the engineer's next step, and no stop byte came after the activity ended.
        await c.Machine.JogAsync(new JogRequest { DxMm = -1 }, deadline: CalibrationHost.Deadline);
        Assert.Equal(realtime.Count(b => b.Command is (byte)'!' or 0x18), c.Simulator.RealtimeLog.Count(b => b.Command is (byte)'!' or 0x18));
    }

    private static bool IsMoving(string state) => state is "Run" or "Jog" or "Home" or "Hold:1";

    /// <summary>One frame of a camera that waits for the test: <see cref="Held"/> is set while it waits.</summary>
    private sealed class FrameGate(int holdAtRead) : IDisposable
    {
        private readonly ManualResetEventSlim _released = new();
        private int _reads;

        public ManualResetEventSlim Held { get; } = new();

        public void Release() => _released.Set();

        public void BeforeRead()
        {
            if (Interlocked.Increment(ref _reads) != holdAtRead) return;
            Held.Set();
            // Bounded: a test that fails early must not leave the controller's calibration thread waiting for ever.
            _released.Wait(TimeSpan.FromSeconds(30));
        }

        public void Dispose()
        {
            _released.Set();
            _released.Dispose();
            Held.Dispose();
        }
    }

    /// <summary>The synthetic camera behind a <see cref="FrameGate"/>.</summary>
    private sealed class GatedCamera(SimulatedGantryMarkerCamera inner, FrameGate gate) : IFrameSource, ISimulatedTouchPlate
    {

        public string Description => inner.Description;
        public CameraIntrinsics? Intrinsics => inner.Intrinsics;
        public bool PacesItself => inner.PacesItself;
        public TimeSpan FrameInterval => inner.FrameInterval;
        public bool ShowTouchPlate { get => inner.ShowTouchPlate; set => inner.ShowTouchPlate = value; }
        public MarkerBoard PlateBoard => inner.PlateBoard;
        public IReadOnlyList<TouchPoint> TouchPoints() => inner.TouchPoints();

        public Frame? Read()
        {
            gate.BeforeRead();
            return inner.Read();
        }

        public void Dispose() => inner.Dispose();
    }

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
    public async Task A_controller_shut_down_mid_calibration_stops_the_gantry_stores_nothing_and_says_why_before_it_closes_the_link()
    {
        var c = await CalibrationHost.StartAsync(timeScale: 5);
        await using (c)
        {
            await c.HomeAsync();
            var ledger = c.Services.GetRequiredService<LedgerStore>();
            var storedBefore = ledger.ListCalibrations(SmpRobot.Controller.Storage.CalibrationKind.Gantry).Count;
            var call = c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 25, Heights = 2 }, deadline: CalibrationHost.Deadline).ResponseAsync;
            await c.Simulator.UntilAsync(g => g.MotionRecord.Count(m => m.Kind == SimMotionKind.Feed || m.Kind == SimMotionKind.Rapid) >= 6, "six calibration moves", Wait);

            // SIGTERM: the web server drains the call, which stops at once instead of running its 25 stops.
            await c.StopAsync();

            var e = await Assert.ThrowsAsync<RpcException>(() => call);
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
            Assert.Contains("gantry calibration stopped because the controller is shutting down: motion stopped (feed hold, queue flushed, needle up); nothing stored", e.Status.Detail, StringComparison.Ordinal);
            // The stop went out on a link still open, and nothing moved across the stop but the needle going up.
            var hold = c.Simulator.RealtimeLog.First(b => b.Command == (byte)'!');
            Assert.All(c.Simulator.MotionRecord.Where(m => m.StartSimSeconds > hold.SimSeconds), m => Assert.True(m.To.X == m.From.X && m.To.Y == m.From.Y && m.To.Z >= m.From.Z, $"{m} after the stop"));
            Assert.Contains(ledger.ReadAudit(null), a => a.Kind == "calibration-stopped" && a.Message.Contains("shutting down", StringComparison.Ordinal));
            Assert.Equal(storedBefore, ledger.ListCalibrations(SmpRobot.Controller.Storage.CalibrationKind.Gantry).Count);
            Assert.Null(c.Services.GetRequiredService<GantryConnection>().Lease.Holder);
        }
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
