using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Calibration;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>
/// Calibration end to end through the real gRPC host: the simulated gantry carries the needle-head
/// marker, the synthetic camera (true mounting, lens distortion and noise known) sees it.
/// </summary>
[Collection(CalibrationCollection.Name)]
public sealed class GantryCalibrationEndToEndTests
{
    private static readonly MachineProfile Profile = TestProfiles.Sim();

    [Fact]
    public async Task Recovers_the_true_mounting_and_the_drift_check_fails_once_the_camera_moved_half_a_millimetre()
    {
        await using var c = await CalibrationHost.StartAsync();
        await c.HomeAsync();
        var truth = c.Camera.Truth;

        // The machine status carries the calibration's progress while it runs (the console's progress line reads it).
        using var watchCts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var seen = new List<Contracts.V1.MachineActivity>();
        var watching = Task.Run(async () =>
        {
            using var watch = c.Machine.WatchStatus(new WatchMachineStatusRequest(), cancellationToken: watchCts.Token);
            try
            {
                while (await watch.ResponseStream.MoveNext(watchCts.Token))
                {
                    if (watch.ResponseStream.Current.Activity is { } a) lock (seen) seen.Add(a);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
            }
        });
        var reply = await c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 25, Heights = 2, Notes = "end-to-end test" }, deadline: CalibrationHost.Deadline);
        await watchCts.CancelAsync();
        await watching.WaitAsync(TimeSpan.FromSeconds(10));
        lock (seen)
        {
            Assert.NotEmpty(seen);
            Assert.All(seen, a => Assert.Equal("gantry calibration", a.Name));
            // 25 stops, then the tip touch-offs are added to the total (the status is sampled, so either may be seen last).
            Assert.All(seen, a => Assert.True(a.StepsTotal >= 25 && a.StepsDone <= a.StepsTotal, $"{a.StepsDone}/{a.StepsTotal}"));
            for (var i = 1; i < seen.Count; i++) Assert.True(seen[i].StepsDone >= seen[i - 1].StepsDone, "stops done went backwards");
            Assert.True(seen[^1].StepsDone > seen[0].StepsDone, "the progress did not advance");
            // The step the console shows flows through: each sampled one is the procedure's own text (none yet at its start). (Which steps a
            // sample catches depends on timing: at time scale 200 a move lasts milliseconds, a measurement much longer.)
            Assert.All(seen, a => Assert.Matches(@"^(|stop \d+: (moving to .+|measuring the marker)|tip touch-off \d+ of \d+)$", a.Step));
            Assert.Contains(seen, a => a.Step.StartsWith("stop ", StringComparison.Ordinal));
        }
        Assert.Null((await c.Machine.GetStatusAsync(new GetMachineStatusRequest())).Activity);

        Assert.True(reply.Calibration.Valid, string.Join("; ", reply.Warnings));
        Assert.True(reply.Applied);
        Assert.Equal("TipTouch", reply.TipOffsetSource);
        Assert.Equal(25, reply.Stops.Count);
        Assert.Empty(reply.Outliers);
        var found = ToTransform(reply.GantryFromCamera);
        var error = MaxMappingErrorMm(found, truth.GantryFromCamera);
        Assert.True(error <= 0.05, $"T_GC differs from the truth by up to {error:0.0000} mm over the calibration volume");
        await Console.Error.WriteLineAsync(FormattableString.Invariant($"calibration e2e: T_GC error {error:0.0000} mm, {Rotations.AngleBetweenDeg(found, truth.GantryFromCamera):0.0000} deg, validation RMS {reply.Validation.Rms:0.0000} mm, {reply.Seconds:0.0} s"));
        Assert.True(Rotations.AngleBetweenDeg(found, truth.GantryFromCamera) <= 0.05);
        var tip = new Vec3(reply.TipInMarkerMm.XMm, reply.TipInMarkerMm.YMm, reply.TipInMarkerMm.ZMm);
        Assert.True(tip.DistanceTo(truth.TipInMarkerMm) <= 0.1, $"tip offset {tip} vs true {truth.TipInMarkerMm}");
        Assert.True(reply.Validation.Count >= 3 && reply.Validation.Rms < 0.05, $"validation RMS {reply.Validation.Rms} mm");
        AssertPng(reply.ResidualsPng.ToByteArray());
        AssertPng(reply.HistogramPng.ToByteArray());
        // Nothing was placed: the needle drive stayed off.
        Assert.False(c.Simulator.SpindleOn);

        var list = await c.Calibration.ListCalibrationsAsync(new ListCalibrationsRequest());
        Assert.Equal(reply.Calibration.Id, list.CurrentGantryId);
        Assert.Contains(list.Calibrations, x => x.Id == reply.Calibration.Id && x.Current && x.Kind == Contracts.V1.CalibrationKind.Gantry);

        var same = await c.Calibration.CheckDriftAsync(new CheckDriftRequest { ToleranceMm = 0.1 }, deadline: CalibrationHost.Deadline);
        Assert.True(same.Passed, same.Summary);
        Assert.Equal(DriftCheck.RecommendedPoints, same.Points.Count);
        Assert.Equal(reply.Calibration.Id, same.CalibrationId);

        // Someone bumped the camera: 0.5 mm along gantry X.
        c.Camera.Truth = truth.WithCameraMovedBy(new Vec3(0.5, 0, 0));
        var moved = await c.Calibration.CheckDriftAsync(new CheckDriftRequest { ToleranceMm = 0.1 }, deadline: CalibrationHost.Deadline);
        Assert.False(moved.Passed);
        Assert.All(moved.Points, p => Assert.False(p.Passed));
        Assert.StartsWith("FAIL", moved.Summary, StringComparison.Ordinal);
        Assert.InRange(moved.MeanResidualMm.XMm, -0.6, -0.4);
    }

    [Fact]
    public async Task Outlier_stops_are_rejected_and_the_mapping_still_matches_the_truth()
    {
        await using var c = await CalibrationHost.StartAsync();
        await c.HomeAsync();
        var stops = CalibrationPlan.Stops(Profile.Tracking.CalibrationVolume!, 16, 2, new StepGrid(Profile.StepsPerMm));
        // Two stops where the marker seems 1.5 mm off (a loose marker, a misdetection).
        c.Camera.Disturbances = [new MarkerDisturbance(stops[3], new Vec3(1.5, 0, 0)), new MarkerDisturbance(stops[10], new Vec3(0, -1.0, 1.0))];

        var reply = await c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 16, Heights = 2 }, deadline: CalibrationHost.Deadline);

        Assert.Equal([3, 10], reply.Outliers.Order());
        Assert.Contains(reply.Warnings, w => w.Contains("outlier", StringComparison.Ordinal));
        Assert.True(reply.Calibration.Valid, string.Join("; ", reply.Warnings));
        var error = MaxMappingErrorMm(ToTransform(reply.GantryFromCamera), c.Camera.Truth.GantryFromCamera);
        Assert.True(error <= 0.05, $"T_GC error {error:0.0000} mm with two outliers");
    }

    [Fact]
    public async Task Bad_requests_and_an_unhomed_machine_are_refused_with_clear_messages()
    {
        await using var c = await CalibrationHost.StartAsync();
        var notHomed = await Assert.ThrowsAsync<RpcException>(() => c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest(), deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, notHomed.StatusCode);
        Assert.Contains("not homed", notHomed.Status.Detail, StringComparison.Ordinal);

        var fewPoints = await Assert.ThrowsAsync<RpcException>(() => c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 3 }, deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, fewPoints.StatusCode);
        var oneHeight = await Assert.ThrowsAsync<RpcException>(() => c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Heights = 1 }, deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, oneHeight.StatusCode);

        await c.HomeAsync();
        var noCalibration = await Assert.ThrowsAsync<RpcException>(() => c.Calibration.CheckDriftAsync(new CheckDriftRequest(), deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, noCalibration.StatusCode);
        Assert.Contains("smp calibrate gantry", noCalibration.Status.Detail, StringComparison.Ordinal);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => c.Calibration.GetCalibrationAsync(new GetCalibrationRequest { Id = "c-nope" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task A_tracked_session_without_a_calibration_is_refused_and_starts_with_a_recorded_override()
    {
        await using var c = await CalibrationHost.StartAsync(trackedHead: true);
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(20, seed: 5) });

        var refused = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.StartAsync(new SessionRef { SessionId = session.Id }, deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("no valid camera-to-gantry calibration", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("smp calibrate gantry", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(SessionState.Created, (await c.Sessions.GetAsync(new SessionRef { SessionId = session.Id })).State);

        var noReason = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.StartAsync(new SessionRef { SessionId = session.Id, CalibrationOverride = new CalibrationOverride { Reason = " " } }, deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noReason.StatusCode);

        var started = await c.Sessions.StartAsync(new SessionRef
        {
            SessionId = session.Id,
            CalibrationOverride = new CalibrationOverride { Reason = "practice pad, no patient" },
        }, deadline: CalibrationHost.Deadline);
        Assert.Equal(SessionState.Running, started.State);
        Assert.Equal("practice pad, no patient", started.CalibrationOverrideReason);
        Assert.Equal("engineer-test", started.CalibrationOverrideBy);
        Assert.Equal("", started.CalibrationId);
        await c.Sessions.AbortAsync(new SessionRef { SessionId = session.Id }, deadline: CalibrationHost.Deadline);

        await c.WaitForFinalAsync(session.Id);
        var after = await c.Sessions.GetAsync(new SessionRef { SessionId = session.Id });
        Assert.Equal("practice pad, no patient", after.CalibrationOverrideReason);

        // Once calibrated, a tracked session starts without an override and records the calibration.
        var calibration = await c.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 16, Heights = 2 }, deadline: CalibrationHost.Deadline);
        Assert.True(calibration.Calibration.Valid, string.Join("; ", calibration.Warnings));
        var second = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(20, seed: 6) });
        var calibrated = await c.Sessions.StartAsync(new SessionRef { SessionId = second.Id }, deadline: CalibrationHost.Deadline);
        Assert.Equal(SessionState.Running, calibrated.State);
        Assert.Equal(calibration.Calibration.Id, calibrated.CalibrationId);
        Assert.Equal("", calibrated.CalibrationOverrideReason);
        // No calibration moves the machine while a session runs.
        var busy = await Assert.ThrowsAsync<RpcException>(() => c.Calibration.CheckDriftAsync(new CheckDriftRequest(), deadline: CalibrationHost.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, busy.StatusCode);
        Assert.Contains($"session {second.Id} is running", busy.Status.Detail, StringComparison.Ordinal);
        await c.Sessions.AbortAsync(new SessionRef { SessionId = second.Id }, deadline: CalibrationHost.Deadline);
        await c.WaitForFinalAsync(second.Id);
    }

    private static RigidTransform ToTransform(RigidTransformMessage m) =>
        Rotations.FromMatrix([.. m.Rotation], new Vec3(m.TranslationMm.XMm, m.TranslationMm.YMm, m.TranslationMm.ZMm));

    /// <summary>Largest |found · p − truth · p| over the corners of the camera-frame box the calibration volume spans, mm.</summary>
    internal static double MaxMappingErrorMm(RigidTransform found, RigidTransform truth)
    {
        var v = Profile.Tracking.CalibrationVolume!;
        return RigidFit.MaxMappingDifferenceMm(found, truth, v.Min with { Z = v.Min.Z - 10 }, v.Max);
    }

    private static void AssertPng(byte[] png)
    {
        Assert.True(png.Length > 1000);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
    }
}

[CollectionDefinition(Name)]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Maintainability", "CA1515", Justification = "xunit finds collection definitions only on public classes (xUnit1027)")]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711", Justification = "an xunit test-collection definition, named the way xunit names them; the test classes refer to it by this name")]
public sealed class CalibrationCollection
{
    public const string Name = "calibration integration";
}
