using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Calibration;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Vision;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>The session side of calibration: which calibration a start uses, its age limit, overrides, and the machine-use flag.</summary>
public sealed class CalibrationGateTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-23T08:00:00Z", CultureInfo.InvariantCulture));
    private readonly string _directory = Directory.CreateTempSubdirectory("smp-gate-").FullName;
    private readonly LedgerStore _ledger;

    public CalibrationGateTests() => _ledger = new LedgerStore(Path.Combine(_directory, "smp.db"), _time);

    private CalibrationGate Gate(bool tracked) => new(_ledger, TestProfiles.Sim(), new Head(tracked, _time), _time, "synthetic@1280x720");

    private CalibrationRecord Save(bool valid, string camera = "synthetic@1280x720") =>
        _ledger.SaveCalibration(CalibrationKind.Gantry, camera, "sim", "test", "{}", "{}", 0.01, 0.02, 0.03, 25, "", valid);

    [Fact]
    public void A_fixed_head_needs_no_calibration()
    {
        var start = Gate(tracked: false).ForSessionStart(null);
        Assert.Null(start.CalibrationId);
        Assert.Null(start.Override);
    }

    [Fact]
    public void A_tracked_head_uses_the_newest_valid_calibration_of_its_camera_until_it_is_too_old()
    {
        var gate = Gate(tracked: true);
        Save(valid: true);
        _time.Advance(TimeSpan.FromMinutes(5));
        var newest = Save(valid: true);
        _time.Advance(TimeSpan.FromMinutes(5));
        Save(valid: false);
        Save(valid: true, camera: "device:0@1280x720");

        Assert.Equal(newest.Id, gate.ForSessionStart(null).CalibrationId);

        // The sim profile allows 24 h.
        _time.Advance(TimeSpan.FromHours(24));
        var e = Assert.Throws<RefusedException>(() => gate.ForSessionStart(null));
        Assert.Equal(RefusalKind.FailedPrecondition, e.Kind);
        Assert.Contains("more than the profile's limit of 24 h", e.Message, StringComparison.Ordinal);
        Assert.Contains("smp calibrate gantry", e.Message, StringComparison.Ordinal);

        var overridden = gate.ForSessionStart(new CalibrationOverrideRequest("ana", " demo on a practice pad "));
        Assert.Null(overridden.CalibrationId);
        Assert.Equal(new CalibrationOverrideRequest("ana", "demo on a practice pad"), overridden.Override);
    }

    [Fact]
    public void Only_one_procedure_moves_the_machine_and_never_while_a_session_runs()
    {
        var lease = new MachineLease();
        using (lease.Acquire(MachineUse.Session, "session s-1", "start session s-1"))
        {
            var running = Assert.Throws<RefusedException>(() => lease.Acquire(MachineUse.Calibration, "gantry calibration", "run the gantry calibration"));
            Assert.Contains("session s-1 is running", running.Message, StringComparison.Ordinal);
            Assert.Equal(RefusalKind.FailedPrecondition, running.Kind);
        }
        Assert.Null(lease.Holder);

        using (lease.Acquire(MachineUse.Calibration, "gantry calibration", "run the gantry calibration"))
        {
            Assert.Equal(new MachineHolder(MachineUse.Calibration, "gantry calibration"), lease.Holder);
            var busy = Assert.Throws<RefusedException>(() => lease.Acquire(MachineUse.Calibration, "drift check", "run the drift check"));
            Assert.Contains("a gantry calibration is already running", busy.Message, StringComparison.Ordinal);
            Assert.Null(lease.TryAcquire(MachineUse.Jog, "jog", out var holder));
            Assert.Equal("gantry calibration", holder!.What);
        }
        Assert.Null(lease.Holder);
    }

    [Fact]
    public void Calibrations_are_stored_listed_and_recorded_on_sessions()
    {
        var c = Save(valid: true);
        var found = _ledger.FindCalibration(c.Id)!;
        Assert.Equal(c with { CreatedAt = found.CreatedAt }, found);
        Assert.Equal(_time.GetUtcNow(), found.CreatedAt);
        Assert.Single(_ledger.ListCalibrations(CalibrationKind.Gantry));
        Assert.Empty(_ledger.ListCalibrations(CalibrationKind.Intrinsics));

        var session = _ledger.CreateSession("p", "{}", "sim", [new PlannedDot(0, "d1", 0, 0, 0, 1, 100, "charcoal-1")]);
        _ledger.RecordSessionCalibration(session.Id, null, "ana", "practice pad");
        var stored = _ledger.FindSession(session.Id)!;
        Assert.Null(stored.CalibrationId);
        Assert.Equal(("ana", "practice pad"), (stored.OverrideBy, stored.OverrideReason));
        _ledger.RecordSessionCalibration(session.Id, c.Id, null, null);
        Assert.Equal(c.Id, _ledger.FindSession(session.Id)!.CalibrationId);
    }

    public void Dispose()
    {
        _ledger.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private sealed class Head(bool tracked, TimeProvider clock) : IHeadPoseSource
    {
        public string Description => "test";
        public bool IsTracking => tracked;
        public TimeProvider Clock => clock;
        public HeadPoseSample? Latest(TimeSpan lookAhead = default) => null;
        public event EventHandler? PoseUpdated { add { } remove { } }
    }
}
