using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Sessions;

/// <summary>How one pass of the per-dot cycle ended.</summary>
public enum DotOutcomeKind
{
    /// <summary>The dot is Placed: plunged, dwelt, retracted and confirmed back at its hover point.</summary>
    Placed,

    /// <summary>Not plunged: the cycle holds. <see cref="DotOutcome.WaitsForTracking"/> holds go round again by themselves; others pause the session.</summary>
    Held,

    /// <summary>The tracking guard pulled the needle out; the firmware is set up again. <see cref="DotOutcome.InDoubt"/> names the dot that was being placed, if any (now in doubt).</summary>
    GuardTripped,

    /// <summary>A pause, abort, fault or e-stop was asked for before the dot's intent was recorded: nothing of this dot happened.</summary>
    Stopped,

    /// <summary>The machine failed (an alarm, a lost link or ack, a refused line, a gantry not where it should be). <see cref="DotOutcome.InDoubt"/> names the dot when its intent was recorded: it may or may not have been placed.</summary>
    Failed,
}

/// <summary>The result of <see cref="DotCycle.PlaceAsync"/>.</summary>
/// <param name="Kind">How it ended.</param>
/// <param name="Reason">Why it held or tripped (the operator's words); empty for Placed and Stopped.</param>
/// <param name="WaitsForTracking">A hold that ends by itself once tracking settles.</param>
/// <param name="InDoubt">The dot that was commanded and could not be confirmed (GuardTripped: already marked in doubt; Failed: the runner marks it with the session's end reason).</param>
/// <param name="Error">The machine failure (Failed only).</param>
public sealed record DotOutcome(DotOutcomeKind Kind, string Reason = "", bool WaitsForTracking = false, PlannedDot? InDoubt = null, Exception? Error = null)
{
    public static readonly DotOutcome Placed = new(DotOutcomeKind.Placed);
    public static readonly DotOutcome Stopped = new(DotOutcomeKind.Stopped);

    public static DotOutcome Held(string reason, bool waitsForTracking) => new(DotOutcomeKind.Held, reason, waitsForTracking);
}

/// <summary>
/// The per-dot cycle of DESIGN.md, one dot at a time, for one run: aim, travel at hover, verify before
/// plunge, record intent, plunge-dwell-retract, confirm. Knows where the gantry is between dots; every
/// line comes from <see cref="DotProgram"/> and goes through <see cref="MotionLink"/>; the ledger holds
/// every dot's state. Runs on the runner's task only.
/// </summary>
/// <summary>What the camera's check of a run's dots needs: the checker, each dot's planned point in S, the plan's nominal T_HS.</summary>
public sealed record DotCheckPlan(DotChecks Checks, IReadOnlyDictionary<string, Vec3> PlannedS, RigidTransform NominalHeadFromScalp);

public sealed partial class DotCycle
{
    /// <summary>Verify-before-plunge corrections of a fixed head before the session holds.</summary>
    public const int MaxVerifyTries = 3;

    /// <summary>Status reports carry 3 decimals: a position may differ by their rounding, nothing more, mm.</summary>
    public const double PositionReportToleranceMm = 0.002;

    /// <summary>Ledger fsync and the line on the wire before the plunge starts (measured ~5-15 ms here).</summary>
    private static readonly TimeSpan DecisionToMotion = TimeSpan.FromMilliseconds(10);

    /// <summary>Arrival sync and the status query of verify-before-plunge.</summary>
    private static readonly TimeSpan VerifyRoundTrip = TimeSpan.FromMilliseconds(30);

    private readonly SessionRun _run;
    private readonly MotionLink _motion;
    private readonly GantryConnection _gantry;
    private readonly DotProgram _program;
    private readonly Aiming _aiming;
    private readonly MachineProfile _profile;
    private readonly OperatorPresence _presence;
    private readonly PoseUpdates _poses;
    private readonly LedgerStore _ledger;
    private readonly ILogger _log;
    private readonly Action _changed;
    private readonly TimeProvider _time;
    private Vec3 _position;

    // The dot of this pass whose intent is recorded and not yet confirmed (it would be in doubt).
    private PlannedDot? _commanded;

    /// <summary>How long a motion hold's retract may take before the run faults.</summary>
    public static readonly TimeSpan RetractWait = TimeSpan.FromSeconds(30);

    public DotCycle(SessionRun run, MotionLink motion, GantryConnection gantry, DotProgram program, Aiming aiming, MachineProfile profile, OperatorPresence presence, PoseUpdates poses, LedgerStore ledger, TimeProvider timeProvider, ILogger log, Action changed)
    {
        (_run, _motion, _gantry, _program, _aiming, _profile, _presence, _poses, _ledger, _time, _log, _changed) = (run, motion, gantry, program, aiming, profile, presence, poses, ledger, timeProvider, log, changed);
    }

    private MotionHold Hold => _run.Hold;

    private TrackingGuard Guard => _run.Guard;

    private bool StopRequested => _run.Commands.StopRequested;

    /// <summary>The dot whose intent was recorded and that was not confirmed (after a failure or a cancelled run: in doubt); null otherwise.</summary>
    public PlannedDot? Commanded => _commanded;

    /// <summary>
    /// The <see cref="Commanded"/> dot was placed and confirmed, but the record store could not be told yet: record it
    /// Placed, never in doubt, never again.
    /// </summary>
    public bool PlacedUnrecorded { get; private set; }

    /// <summary>How often an unreachable record store is asked again while the cycle holds for it.</summary>
    public static readonly TimeSpan StoreRetryInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>Where the gantry is (on the grid), as the cycle last saw or commanded it.</summary>
    public Vec3 Position => _position;

    /// <summary>Sets the firmware up for the session (absolute mm, needle drive on) and reads where the gantry is.</summary>
    public async Task BeginAsync(CancellationToken ct)
    {
        await _motion.SetUpAsync(_program.SessionPreamble(), ct);
        _position = _program.Grid.Quantise((await _motion.StatusAsync(ct)).MachinePosition);
    }

    /// <summary>
    /// One pass of the cycle for <paramref name="dot"/>. Steps 2-6 run with the tracking guard armed:
    /// if tracking fails while the needle is at or below its hover point, the guard stops the motion
    /// and pulls the needle out at once, and this returns GuardTripped. Throws only for a cancelled run
    /// (fault, e-stop) and for what no step expects.
    /// </summary>
    public async Task<DotOutcome> PlaceAsync(PlannedDot dot, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(dot);
        // A retract the guard asked for just before the last pass disarmed is finished before anything else moves.
        await FinishRetractIfRequestedAsync(ct);
        _commanded = null;
        PlacedUnrecorded = false;

        // 1. Aim. A tracking hold waits here, needle raised, until tracking has settled.
        var (aim, notAimed) = await AimAsync(dot, ct);
        if (aim is null) return notAimed!;

        DotOutcome outcome;
        Guard.Arm();
        try
        {
            outcome = await ArmedStepsAsync(aim, ct);
        }
        catch (Exception e) when (IsMachineFailure(e))
        {
            // The guard stopped the motion and is retracting the needle: the failure is the hold's doing.
            outcome = Guard.RetractRequested ? GuardTrippedMark : new DotOutcome(DotOutcomeKind.Failed, e.Message, InDoubt: _commanded, Error: e);
        }
        finally
        {
            Guard.Disarm();
        }
        return ReferenceEquals(outcome, GuardTrippedMark) ? await GuardTrippedAsync(ct) : outcome;
    }

    /// <summary>Returned by the armed steps when the guard's retract is under way; <see cref="GuardTrippedAsync"/> deals with it once disarmed.</summary>
    private static readonly DotOutcome GuardTrippedMark = new(DotOutcomeKind.GuardTripped);

    /// <summary>Steps 2-6, with the guard armed.</summary>
    private async Task<DotOutcome> ArmedStepsAsync(AimedDot aim, CancellationToken ct)
    {
        // 2. Travel at hover height.
        var travelSeconds = await TravelAsync(aim, ct);
        if (StopRequested) return DotOutcome.Stopped;

        // 3. Verify before plunge: the gantry is where it should be, idle, and the target is still right.
        var (verified, hold, correctionSeconds) = await VerifyOrCorrectAsync(aim, ct);
        _run.AddKinematic(travelSeconds + correctionSeconds);
        // A guard retract moves the gantry under the verify: that is the hold, not a mismatch.
        if (Guard.RetractRequested) return GuardTrippedMark;
        if (hold is not null)
        {
            if (hold.WaitsForTracking) Hold.Pending = hold.Reason; // the same dot again, through the hold at the top
            return hold;
        }

        // The skin as the camera sees it before the plunge (taken before the intent's commit, so the plunge never waits
        // for it): the camera's check finds the new dot against it. Asked for before every plunge of a checked run, so
        // the check of the dot before never uses a frame that may hold this one.
        var before = Checks?.Checks.TakeBefore();
        if (before is not null && !Checks!.PlannedS.ContainsKey(verified.Dot.DotId))
        {
            before.Dispose();
            before = null;
        }
        try
        {
            // 4. Record intent durably, before any plunge line is written.
            if (await RecordIntentAsync(verified, ct) is { } notRecorded) return notRecorded;

            // 5. Plunge, dwell, retract; the last line is a sync.
            var place = _program.Place(verified.HoverMm, verified.DepthMm, verified.Dot.DwellMs);
            _run.AddKinematic(place.Sum(l => l.KinematicSeconds));
            await _motion.RunAsync(place, ct);

            // 6. Confirm: back at the hover point, idle.
            if (await ConfirmAsync(verified, ct) is { } mismatch)
            {
                if (Guard.RetractRequested) return GuardTrippedMark;
                throw mismatch;
            }
            if (!await RecordPlacedAsync(verified.Dot, ct)) return DotOutcome.Stopped;
            _commanded = null;
            if (before is not null)
            {
                QueueCheck(verified.Dot, before);
                before = null; // the check owns it now
            }
            return DotOutcome.Placed;
        }
        finally
        {
            before?.Dispose();
            // However the plunge ended (placed, in doubt, stopped): the next before-frame must be taken after it.
            Checks?.Checks.PlungeEnded();
        }
    }

    /// <summary>
    /// The camera's check of the dots of a treatment session (null: no check): the checker, each dot's planned point in
    /// S and the plan's nominal T_HS. Set by the runner before the run when its camera can check dots.
    /// </summary>
    public DotCheckPlan? Checks { get; set; }

    private void QueueCheck(PlannedDot dot, FrameBefore before)
    {
        var checks = Checks!;
        var correction = _aiming.SurfaceCorrection;
        var planH = new Vec3(dot.XMm, dot.YMm, dot.ZMm);
        var targetH = correction.Apply(planH);
        var normalPlan = _aiming.Normals(dot.DotId) ?? new Vec3(0, 0, 1);
        var normalH = (correction.Apply(planH + normalPlan) - targetH).Normalized();
        var scalpFromHead = Rotations.Inverse(correction * checks.NominalHeadFromScalp);
        checks.Checks.Placed(_run.SessionId, dot.DotId, targetH, normalH, before, scalpFromHead, checks.PlannedS[dot.DotId]);
    }

    /// <summary>
    /// Step 4 when the record store may be away: the intent is committed, or nothing moves. An unreachable store holds
    /// the cycle at the hover point ("record store unreachable: …") and is asked again every
    /// <see cref="StoreRetryInterval"/>; when it answers, an intent whose commit was cut off and did land is withdrawn
    /// (no plunge line was written), and the same dot goes round again from its aim (the head may have moved).
    /// Returns the outcome that ends this pass, or null when the intent is recorded.
    /// </summary>
    private async Task<DotOutcome?> RecordIntentAsync(AimedDot aim, CancellationToken ct)
    {
        try
        {
            RecordIntent(aim);
            return null;
        }
        catch (StoreUnavailableException e)
        {
            var seq = aim.Dot.Seq;
            void Withdraw() => _ledger.WithdrawIntent(_run.SessionId, seq, "the record store was unreachable while this dot's intent was recorded; no plunge line was written");
            // Until it is withdrawn the store may show the dot Commanded (its commit may have landed unseen): a run stopped
            // before the store answers withdraws it with its end (see IntentToWithdraw).
            IntentToWithdraw = Withdraw;
            var back = await WaitForStoreAsync(e, aim.Dot, Withdraw, ct);
            if (back) IntentToWithdraw = null;
            return back ? DotOutcome.Held(e.Message, waitsForTracking: true) : DotOutcome.Stopped;
        }
    }

    /// <summary>
    /// Set while an intent whose commit the controller could not see is not yet withdrawn (the record store was away):
    /// the runner withdraws it when the run ends, or with the run's end once the store answers. No plunge line was
    /// written for that dot, so Commanded would be untrue: it goes back to Pending (a no-op when the commit never landed).
    /// </summary>
    public Action? IntentToWithdraw { get; private set; }

    /// <summary>
    /// Step 6's record: Commanded → Placed. The dot is placed (the firmware proved it): an unreachable record store holds
    /// the cycle at the hover point and the write is retried every <see cref="StoreRetryInterval"/>, never the dot.
    /// Returns false when a stop was asked for first: the dot is then still <see cref="Commanded"/> with
    /// <see cref="PlacedUnrecorded"/> set, for the runner to record when it can (a controller that dies first leaves it
    /// Commanded, and its restart puts it in doubt, as for any fault between plunge and confirmation).
    /// </summary>
    private async Task<bool> RecordPlacedAsync(PlannedDot dot, CancellationToken ct)
    {
        try
        {
            _ledger.MarkPlaced(_run.SessionId, dot.Seq);
            return true;
        }
        catch (StoreUnavailableException e)
        {
            PlacedUnrecorded = true;
            if (!await WaitForStoreAsync(e, dot, () => _ledger.MarkPlacedAgain(_run.SessionId, dot.Seq), ct)) return false;
            PlacedUnrecorded = false;
            return true;
        }
    }

    /// <summary>
    /// A hold for the record store: published with the store's reason, the needle at the hover point, the machine still.
    /// <paramref name="write"/> is tried again every <see cref="StoreRetryInterval"/> until it succeeds (true: the hold
    /// ends, audited with its length) or a stop is asked for (false). A cancelled run (e-stop, fault) throws.
    /// </summary>
    private async Task<bool> WaitForStoreAsync(StoreUnavailableException first, PlannedDot dot, Action write, CancellationToken ct)
    {
        Hold.Begin(first.Message, dot.Seq);
        while (true)
        {
            if (StopRequested)
            {
                Hold.End();
                _changed();
                return false;
            }
            await Task.Delay(StoreRetryInterval, _time, ct);
            try
            {
                write();
                Hold.StoreBack();
                return true;
            }
            catch (StoreUnavailableException e)
            {
                Hold.Update(e.Message);
            }
        }
    }

    /// <summary>What the cycle expects the machine to do to it: each ends the pass (a cancelled run is not one of them).</summary>
    public static bool IsMachineFailure(Exception e) =>
        e is GantryFaultException or MotionRefusedException or TimeoutException or LineRefusedException or PlacementMismatchException;

    /// <summary>
    /// Step 1 with the automatic motion hold: aims <paramref name="dot"/> with the pose predicted for
    /// the moment its plunge reaches depth. While a tracking gate fails the session holds: the needle
    /// goes <c>tracking.holdClearanceMm</c> up, the hold and its reason are published, and the cycle goes
    /// on by itself only after every gate has passed for <c>tracking.settleMs</c>. Returns the aim, or the
    /// outcome that ends the pass: Held for the operator (operator absent, target outside the envelope,
    /// a hold longer than <c>tracking.maxHoldSeconds</c>), or Stopped.
    /// </summary>
    private async Task<(AimedDot? Aim, DotOutcome? Outcome)> AimAsync(PlannedDot dot, CancellationToken ct)
    {
        var clock = Hold.Clock;
        long? goodSince = null;
        if (Hold.Pending is { } carried)
        {
            Hold.Pending = null;
            Hold.Begin(carried, dot.Seq);
        }
        while (true)
        {
            if (StopRequested) return (null, DotOutcome.Stopped);
            if (_presence.AbsenceReason(_run.ConsoleId) is { } absent) return (null, DotOutcome.Held(absent, false));
            var result = _aiming.AimOrHold(dot, LookAhead(dot));
            if (result.Aim is not null)
            {
                if (!Hold.Holding) return (result.Aim, null);
                goodSince ??= clock.GetTimestamp();
                var goodMs = clock.GetElapsedTime(goodSince.Value).TotalMilliseconds;
                if (goodMs >= _profile.Tracking.SettleMs)
                {
                    Hold.Settled(goodMs);
                    continue; // aim again with the freshest pose
                }
            }
            else if (!result.TrackingHold)
            {
                return (null, DotOutcome.Held(result.HoldReason!, false));
            }
            else
            {
                goodSince = null;
                if (!Hold.Holding) Hold.Begin(result.HoldReason!, dot.Seq);
                else Hold.Update(result.HoldReason!);
                if (Hold.Seconds > _profile.Tracking.MaxHoldSeconds)
                {
                    Hold.End();
                    return (null, DotOutcome.Held(FormattableString.Invariant($"tracking did not settle within {_profile.Tracking.MaxHoldSeconds:0} s ({result.HoldReason})"), false));
                }
            }
            if (Hold.Holding && !Hold.Raised)
            {
                await RaiseAsync(ct);
                Hold.Raised = true;
            }
            await _poses.WaitAsync(ct);
        }
    }

    /// <summary>Step 2: travel to the hover point (climb first, descend last) and wait until the firmware has executed it. Returns its kinematic time, s.</summary>
    private async Task<double> TravelAsync(AimedDot aim, CancellationToken ct)
    {
        var seconds = await _motion.MoveAndSyncAsync(_program.Travel(_position, aim.HoverMm), ct);
        _position = aim.HoverMm;
        Hold.Raised = false;
        return seconds;
    }

    /// <summary>
    /// Step 3: verify before plunge, correcting a moved target: verified as it is, or after at most
    /// <see cref="MaxVerifyTries"/> (fixed head) / <c>tracking.maxAimCorrections</c> corrections, or a hold.
    /// Returns the aim to plunge, the hold (null when verified), and the corrections' travel time, s.
    /// </summary>
    private async Task<(AimedDot Aim, DotOutcome? Hold, double CorrectionSeconds)> VerifyOrCorrectAsync(AimedDot aim, CancellationToken ct)
    {
        var maxTries = _aiming.Source.IsTracking ? _profile.Tracking.MaxAimCorrections : MaxVerifyTries;
        var correctionSeconds = 0.0;
        for (var tries = 0; ; tries++)
        {
            var (verified, hold, seconds) = await VerifyOnceAsync(aim, ct);
            correctionSeconds += seconds;
            _position = verified.HoverMm;
            if (hold is not null || verified == aim) return (verified, hold, correctionSeconds);
            aim = verified;
            if (tries + 1 >= maxTries)
            {
                return (aim, DotOutcome.Held($"dot {aim.Dot.DotId}: the target kept moving after {maxTries} corrections", true), correctionSeconds);
            }
        }
    }

    /// <summary>
    /// One verify: the firmware says idle at the hover point, the operator is present, and re-aiming
    /// with the pose predicted for the moment the needle reaches depth lands within tolerance
    /// (verifyToleranceMm for a fixed head, tracking.aimToleranceMm for a tracked one). A moved target
    /// is corrected (a new travel, which moves the gantry) and must be verified again.
    /// </summary>
    private async Task<(AimedDot Aim, DotOutcome? Hold, double CorrectionSeconds)> VerifyOnceAsync(AimedDot aim, CancellationToken ct)
    {
        if (_presence.AbsenceReason(_run.ConsoleId) is { } absent) return (aim, DotOutcome.Held(absent, false), 0);
        var status = await _motion.StatusAsync(ct);
        if (!status.IsIdle) return (aim, DotOutcome.Held($"gantry is {status.State} at dot {aim.Dot.DotId}, expected Idle", false), 0);
        var offMm = status.MachinePosition.DistanceTo(aim.HoverMm);
        if (offMm > PositionReportToleranceMm)
        {
            return (aim, DotOutcome.Held(FormattableString.Invariant($"gantry is at {status.MachinePosition}, not at dot {aim.Dot.DotId}'s hover point {aim.HoverMm} ({offMm:0.000} mm off)"), false), 0);
        }
        // The decision to plunge is taken on the next frame (at most one frame period away): the
        // pose it predicts from is then as fresh as the camera allows.
        if (_aiming.Source.IsTracking) await _poses.WaitAsync(ct);
        var fresh = _aiming.AimOrHold(aim.Dot, PlungeLookAhead(aim.Dot));
        if (fresh.Aim is null) return (aim, DotOutcome.Held(fresh.HoldReason!, fresh.TrackingHold), 0);
        var tolerance = _aiming.Source.IsTracking ? _profile.Tracking.AimToleranceMm : _profile.VerifyToleranceMm;
        var predictedOffMm = fresh.Aim.HoverMm.DistanceTo(aim.HoverMm);
        Log.Verify(_log, aim.Dot.DotId, predictedOffMm);
        if (predictedOffMm <= tolerance && fresh.Aim.DepthMm.DistanceTo(aim.DepthMm) <= tolerance)
        {
            return (aim, null, 0);
        }
        var target = fresh.Aim;
        if (_aiming.Source.IsTracking)
        {
            // The head keeps moving while the correction runs: aim where it will be when the
            // corrected plunge reaches depth, so the next verify agrees instead of chasing it.
            var correction = TimeSpan.FromSeconds(_program.Travel(aim.HoverMm, target.HoverMm).Sum(l => l.KinematicSeconds));
            var ahead = _aiming.AimOrHold(aim.Dot, correction + VerifyRoundTrip + PlungeLookAhead(aim.Dot));
            if (ahead.Aim is null) return (aim, DotOutcome.Held(ahead.HoldReason!, ahead.TrackingHold), 0);
            target = ahead.Aim;
        }
        var seconds = await _motion.MoveAndSyncAsync(_program.Travel(aim.HoverMm, target.HoverMm), ct);
        return (target, null, seconds);
    }

    /// <summary>Step 4: <c>Pending → Commanded</c>, an fsync'd commit, before any plunge line is written.</summary>
    private void RecordIntent(AimedDot aim)
    {
        _ledger.MarkCommanded(_run.SessionId, aim.Dot.Seq, aim.DepthMm);
        _commanded = aim.Dot;
        _changed();
    }

    /// <summary>
    /// Step 6: the sync ok proved the lines ran; the position proves they ran as written. Z moves are
    /// relative, so a plunge or retract that lost a byte leaves the needle off its hover point, and
    /// that dot is in doubt, never Placed. Returns the mismatch, or null when confirmed.
    /// </summary>
    private async Task<PlacementMismatchException?> ConfirmAsync(AimedDot aim, CancellationToken ct)
    {
        var after = await _motion.StatusAsync(ct);
        var offMm = after.MachinePosition.DistanceTo(aim.HoverMm);
        if (after.IsIdle && offMm <= PositionReportToleranceMm) return null;
        return new PlacementMismatchException(FormattableString.Invariant(
            $"after dot {aim.Dot.DotId} the gantry is {after.State} at {after.MachinePosition}, not back at its hover point {aim.HoverMm} ({offMm:0.000} mm off): the plunge or retract did not run as commanded"));
    }

    /// <summary>The guard pulled the needle out: the dot being placed (if any) is in doubt, and the firmware is set up again.</summary>
    private async Task<DotOutcome> GuardTrippedAsync(CancellationToken ct)
    {
        var reason = Guard.RetractReason;
        var commanded = _commanded;
        _commanded = null;
        if (commanded is not null)
        {
            var note = "the needle was retracted mid-dot by a motion hold: " + reason;
            _ledger.MarkInDoubt(_run.SessionId, commanded.Seq, note);
            _ledger.Audit(_run.SessionId, "in-doubt", $"dot {commanded.DotId} is in doubt: {note}");
            Hold.CountRetract();
        }
        await FinishRetractAsync(ct);
        return new DotOutcome(DotOutcomeKind.GuardTripped, reason, WaitsForTracking: true, InDoubt: commanded);
    }

    /// <summary>A retract asked for after the cycle's last look, before it disarmed: the needle is going up; set the firmware up again.</summary>
    public async Task FinishRetractIfRequestedAsync(CancellationToken ct)
    {
        if (Guard.RetractRequested) await FinishRetractAsync(ct);
    }

    /// <summary>
    /// After the guard's retract: waits for it, sets the firmware up again (a flush resets its modal
    /// state and stops the needle drive) and leaves the hold to the next aim. Throws when the retract
    /// failed or the position was lost (the session faults and stops the machine).
    /// </summary>
    private async Task FinishRetractAsync(CancellationToken ct)
    {
        var reason = Guard.RetractReason;
        var error = Guard.RetractTask is { } task ? await task.WaitAsync(RetractWait, _time, ct) : "";
        Guard.ClearRetract();
        if (error.Length > 0) throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "retract after a motion hold failed: " + error);
        if (!_gantry.IsHomed)
        {
            throw new GantryFaultException(GantryFaultKind.Alarm, 0, "the firmware lost its position while stopping for a motion hold: home the machine");
        }
        Hold.Raised = true;
        Hold.Pending = reason;
        if (!StopRequested) await _motion.SetUpAsync(_program.SessionPreamble(), ct);
        _changed();
        _position = _program.Grid.Quantise((await _motion.StatusAsync(ct)).MachinePosition);
    }

    /// <summary>Lifts the needle <c>tracking.holdClearanceMm</c> above where it is (within the envelope) and waits until it is there.</summary>
    private async Task RaiseAsync(CancellationToken ct)
    {
        var targetZ = Math.Min(_position.Z + _profile.Tracking.HoldClearanceMm, _profile.TopZMm);
        if (_profile.Tracking.HoldClearanceMm <= 0 || targetZ <= _position.Z) return;
        var current = _position;
        var up = _program.MoveZ(ref current, _program.Grid.Quantise(current with { Z = targetZ }).Z, _profile.PlungeFeedMmPerMin);
        await _motion.MoveAndSyncAsync([up], ct);
        _position = current;
    }

    /// <summary>
    /// How far ahead to predict the head for a dot aimed now: the travel from where the gantry is, the
    /// verify round trip, and the plunge down to depth (machine time, on the tracking clock).
    /// </summary>
    private TimeSpan LookAhead(PlannedDot dot)
    {
        if (!_aiming.Source.IsTracking) return TimeSpan.Zero;
        var (first, _) = _aiming.Aim(dot, PlungeLookAhead(dot));
        if (first is null) return TimeSpan.Zero;
        var travelSeconds = _program.Travel(_position, first.HoverMm).Sum(l => l.KinematicSeconds);
        return TimeSpan.FromSeconds(travelSeconds) + VerifyRoundTrip + PlungeLookAhead(dot);
    }

    /// <summary>From the verify decision to the needle at depth: the plunge's own time plus the ledger write and the wire.</summary>
    private TimeSpan PlungeLookAhead(PlannedDot dot)
    {
        var hover = Vec3.Zero with { Z = _profile.HoverHeightMm + dot.DepthMm };
        var plunge = _program.Place(hover, Vec3.Zero, dot.DwellMs)[0];
        return TimeSpan.FromSeconds(plunge.KinematicSeconds) + DecisionToMotion;
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Debug, Message = "Verify {Dot}: the target predicted at depth is {OffMm:0.000} mm from the hover point")]
        public static partial void Verify(ILogger log, string dot, double offMm);
    }
}

/// <summary>The gantry is not where the lines it acknowledged should have left it.</summary>
public sealed class PlacementMismatchException(string message) : Exception(message);
