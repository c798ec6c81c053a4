using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Sessions;

/// <summary>
/// Runs a session's pending dots through the <see cref="DotCycle"/> in ledger order, obeying the run's
/// commands (<see cref="RunCommands"/>) between steps, and ends the run: needle drive off at hover, a
/// safe stop after a fault, the dot in doubt marked, and the phase it ends in. The lifecycle stores
/// that end (<see cref="SessionManager"/>). One run at a time.
/// </summary>
public sealed partial class SessionRunner(
    LedgerStore ledger,
    GantryConnection gantry,
    SafetySupervisor safety,
    MotionLink motion,
    OperatorPresence presence,
    MachineProfile profile,
    DotProgram program,
    Aiming aiming,
    PoseUpdates poses,
    TimeProvider timeProvider,
    ILogger log,
    Action changed,
    Surface.SurfaceProbing? surfaceProbing = null,
    DotChecks? dotChecks = null)
{
    /// <summary>The re-check of the head position being placed, when it is placed on a registration; null otherwise.</summary>
    private SurfaceRecheck? _recheck;

    /// <summary>How often the running session's time reaches the ledger (one small write), so a restart after a crash shows it.</summary>
    private static readonly TimeSpan TimersPersistEvery = TimeSpan.FromSeconds(2);

    /// <summary>Runs <paramref name="run"/> to its end; returns the phase it ends in and why (empty for a plain completion).</summary>
    public async Task<(SessionPhase Phase, string Reason)> RunAsync(SessionRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var ct = run.Commands.Cancellation.Token;
        var cycle = new DotCycle(run, motion, gantry, program, aiming, profile, presence, poses, ledger, timeProvider, log, changed);
        // The camera checks every dot of a treatment session (its dots have points in S) when it can see them. A store
        // that cannot answer this now leaves the run without checks (audited when it can be), never without its end.
        if (dotChecks is { Enabled: true } && run.Patches.NominalHeadFromScalp is { } nominal)
        {
            try
            {
                if (ledger.FindSession(run.SessionId)?.TreatmentId is { } treatmentId)
                {
                    var plannedS = ledger.LoadTreatmentDots(treatmentId).Where(d => d.SessionId == run.SessionId).ToDictionary(d => d.DotId, d => d.PlannedS, StringComparer.Ordinal);
                    cycle.Checks = new DotCheckPlan(dotChecks, plannedS, nominal);
                }
            }
            catch (StoreUnavailableException e)
            {
                Log.NoDotChecks(log, run.SessionId, e.Message);
            }
        }
        var outcome = SessionPhase.Completed;
        var reason = "";
        var safeStopNeeded = false;
        try
        {
            var pending = ledger.LoadDots(run.SessionId).Where(d => d.State == DotLedgerState.Pending).Select(d => d.Dot with { Patch = run.Patches.Of(d.Dot.DotId) }).ToList();
            await cycle.BeginAsync(ct);
            var failed = false;
            int? patch = null;
            for (var i = 0; i < pending.Count && !run.Commands.StopRequested;)
            {
                if (pending[i].Patch != patch)
                {
                    if (patch is { } done)
                    {
                        // A new head position: the operator turns the head as the plan says, then resumes.
                        (outcome, reason) = (SessionPhase.Paused, "held: " + NextPositionText(run, done, pending[i].Patch));
                        break;
                    }
                    patch = pending[i].Patch;
                    EnterPosition(run, patch.Value);
                }
                if (_recheck is { Due: true } && run.Hold.Pending is null && !run.Commands.StopRequested)
                {
                    // A retract the guard asked for is finished first: the probe starts from a needle at rest.
                    await cycle.FinishRetractIfRequestedAsync(ct);
                    if (await RecheckSurfaceAsync(run, cycle, pending[i], ct) is { } moved)
                    {
                        (outcome, reason) = (SessionPhase.Paused, "held: " + moved);
                        break;
                    }
                    continue; // the commands, the hold and the dot again, from the top
                }
                var result = await cycle.PlaceAsync(pending[i], ct);
                if (result.Kind == DotOutcomeKind.Placed)
                {
                    _recheck?.CountPlaced();
                    PersistTimersIfDue(run);
                    i++;
                    changed();
                }
                else if (result.Kind == DotOutcomeKind.GuardTripped)
                {
                    if (result.InDoubt is not null) i++; // never redone automatically
                    continue;
                }
                else if (result.Kind == DotOutcomeKind.Held && result.WaitsForTracking)
                {
                    continue; // the same dot again, through the hold at the top
                }
                else if (result.Kind == DotOutcomeKind.Held)
                {
                    (outcome, reason) = (SessionPhase.Paused, "held: " + result.Reason);
                    break;
                }
                else if (result.Kind == DotOutcomeKind.Stopped)
                {
                    break;
                }
                else
                {
                    (outcome, reason) = Failure(run, result.Error!);
                    safeStopNeeded = outcome == SessionPhase.Faulted;
                    failed = true;
                    break;
                }
                // A retract asked for after the cycle's last look, before it disarmed (the dot was
                // confirmed): the needle is going up; set the firmware up again.
                await cycle.FinishRetractIfRequestedAsync(ct);
            }
            if (!failed)
            {
                if (run.Commands.Take() is { } stop)
                {
                    (outcome, reason) = (stop.EndPhase, stop.Reason);
                    safeStopNeeded = stop.Kind == RunCommandKind.Fault;
                }
                else if (outcome == SessionPhase.Completed)
                {
                    (outcome, reason) = Unfinished(run.SessionId) ?? (outcome, reason);
                }
                if (outcome != SessionPhase.EmergencyStopped && !safeStopNeeded)
                {
                    // Normal end, pause or hold: needle drive off at hover.
                    await motion.DriveOffAsync(ct);
                    // A status report from after the M5, so that the end state shown to the operator is measured after the fact.
                    await motion.StatusAsync(ct);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException || DotCycle.IsMachineFailure(e))
        {
            (outcome, reason) = Failure(run, e);
            safeStopNeeded = outcome == SessionPhase.Faulted;
        }
#pragma warning disable CA1031 // the runner's last resort: an unexpected failure faults the session and the safe stop below still runs
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.Failed(log, e, run.SessionId);
            (outcome, reason) = (SessionPhase.Faulted, "internal error: " + e.Message);
            safeStopNeeded = true;
        }

        if (run.Guard.RetractTask is { } pendingRetract)
        {
            // The run ended while the guard was pulling the needle out: that is finished first, and what it could not do is said.
            string retractError;
            try
            {
                retractError = await pendingRetract.WaitAsync(DotCycle.RetractWait, timeProvider, CancellationToken.None);
            }
            catch (TimeoutException)
            {
                retractError = "the motion-hold retract did not finish within 30 s";
            }
            run.Guard.ClearRetract();
            if (retractError.Length > 0 && outcome != SessionPhase.EmergencyStopped)
            {
                Log.RetractFailed(log, retractError);
                reason += "; motion-hold retract: " + retractError;
                outcome = SessionPhase.Faulted;
                safeStopNeeded = true;
            }
        }
        if (cycle.Commanded is { } commanded)
        {
            var inDoubtReason = reason;
            Action record = cycle.PlacedUnrecorded
                // Placed and confirmed while the record store was away: it is recorded as what it is.
                ? () => ledger.MarkPlacedAgain(run.SessionId, commanded.Seq)
                // The plunge may or may not have happened: never redo it automatically.
                : () =>
                {
                    ledger.MarkInDoubtAgain(run.SessionId, commanded.Seq, inDoubtReason);
                    ledger.Audit(run.SessionId, "in-doubt", $"dot {commanded.DotId} is in doubt: {inDoubtReason}");
                };
            try
            {
                record();
            }
            catch (StoreUnavailableException e)
            {
                // It stays Commanded in the store for now (never placed again: a run takes Pending dots only, and the
                // store shows the session Running until its end is written); written with the run's end once the store
                // answers again, or in doubt after the next start (RecoverAfterRestart) if the controller stops first.
                Log.NotRecorded(log, run.SessionId, commanded.DotId, e.Message);
                run.UnrecordedDot = record;
            }
        }
        if (cycle.IntentToWithdraw is { } withdraw)
        {
            try
            {
                withdraw();
            }
            catch (StoreUnavailableException e)
            {
                // Written with the run's end once the store answers (never plunged: a restart first would put it in doubt).
                Log.IntentNotWithdrawn(log, run.SessionId, e.Message);
                run.UnrecordedDot += withdraw;
            }
        }
        if (safeStopNeeded)
        {
            var stopError = await safety.SafeStopAfterFaultAsync(CancellationToken.None);
            if (stopError.Length > 0) reason += "; " + stopError;
        }
        return (outcome, reason);
    }

    /// <summary>
    /// The dead-man during a run, from the watchdog and at once when a console hangs up or the pedal
    /// is released: when the run's console no longer supervises, the motion stops now — mid-dot the
    /// needle is pulled out (the dot is then in doubt) — and the run pauses for the operator. Pressing
    /// the pedal again or a console coming back never resumes it: resuming is a console's request.
    /// Returns the reason when it stopped the run.
    /// </summary>
    public string? CheckOperator(SessionRun run, ISafetySwitch? patientSwitch)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Commands.Posted is not null) return null;
        string reason;
        if (patientSwitch is { IsEngaged: false }) reason = "paused by the patient (" + SessionManager.PatientPressed + ")";
        else if (presence.AbsenceReason(run.ConsoleId) is { } absent) reason = "held: " + absent;
        else return null;
        // Started on this thread: the hold byte goes on the wire before anything else here.
        run.Guard.TryRetract(reason);
        run.Commands.Post(RunCommandKind.Pause, reason);
        Log.HoldsForOperator(log, run.SessionId, reason);
        return reason;
    }

    /// <summary>
    /// The run starts (or goes on after a hold) in head position <paramref name="patch"/>: a still head takes that
    /// position's pose (the operator has turned it, as the plan says, before starting or resuming); a tracked head
    /// is measured wherever it is. Audited, so the record says in which position each part was placed.
    /// </summary>
    private void EnterPosition(SessionRun run, int patch)
    {
        EnterSurface(run, patch);
        if (run.Patches.Count == 0) return;
        var position = run.Patches.Position(patch);
        if (aiming.Source is Vision.FixedHeadPoseSource still) still.HeadPose = run.Patches.HeadPose(patch);
        ledger.Audit(run.SessionId, "head-position", position is null
            ? "placing in the head's nominal position"
            : $"placing in head position {patch} of {run.Patches.Count}: {position.Instruction}");
    }

    /// <summary>
    /// The skin the dots of head position <paramref name="patch"/> are placed on: the newest valid surface registration
    /// of that position (smp surface probe), as a correction of the plan's nominal T_HS; the plan's own skin heights
    /// when there is none (audited either way, so the record says which skin each part was placed on).
    /// </summary>
    private void EnterSurface(SessionRun run, int patch)
    {
        aiming.SurfaceCorrection = RigidTransform.Identity;
        aiming.HeightMap = null;
        _recheck = null;
        if (run.Patches.NominalHeadFromScalp is not { } nominal)
        {
            // No head model: the plan's own heights, or the height map probed over this head position's dots.
            if (ledger.LatestSurfaceRegistration(run.SessionId, patch) is { HeightMapJson: { } map } probed)
            {
                aiming.HeightMap = Treatment.Surface.HeightMap.FromJson(map);
                ledger.Audit(run.SessionId, "surface", $"head position {patch}: placed on height map {probed.Id} ({probed.Notes})");
            }
            return;
        }
        if (ledger.LatestSurfaceRegistration(run.SessionId, patch) is not { } registration)
        {
            ledger.Audit(run.SessionId, "surface", $"head position {patch}: no surface registration; the plan's skin heights are used (smp surface probe measures them)");
            return;
        }
        var measured = Surface.SurfaceProbing.TransformFromJson(registration.HeadFromScalpJson);
        aiming.SurfaceCorrection = measured * Rotations.Inverse(nominal);
        _recheck = SurfaceRecheck.For(surfaceProbing, profile, ledger, registration, measured, patch);
        ledger.Audit(run.SessionId, "surface", FormattableString.Invariant($"head position {patch}: placed on surface registration {registration.Id} (RMS {registration.RmsMm:0.000} mm, {registration.Inliers} of {registration.Contacts} contacts)")
            + (_recheck is null ? "" : FormattableString.Invariant($"; re-checked every {profile.SurfaceRecheckEveryDots} dots")));
    }

    /// <summary>
    /// The periodic re-check (<see cref="SurfaceRecheck"/>) before <paramref name="next"/>: needle drive off, one probe,
    /// then the firmware set up for placing again. Returns the hold's reason when the skin moved or the probe failed.
    /// A probe's own alarm (ALARM:4/5) is its refusal, not a gantry fault of the run (<see cref="SessionRun.ProbeUnderWay"/>).
    /// Any command to the run (the operator's pause, the dead-man, the patient's switch) stops the probe at once: feed
    /// hold, the queue flushed, the needle up, the drive left off; the run then ends as that command says and the
    /// registration stands.
    /// </summary>
    private async Task<string?> RecheckSurfaceAsync(SessionRun run, DotCycle cycle, PlannedDot next, CancellationToken ct)
    {
        await motion.DriveOffAsync(ct);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, run.Commands.AnyPosted);
        run.ProbeUnderWay = true;
        string? moved;
        try
        {
            moved = await _recheck!.CheckAsync(run.SessionId, next, aiming.SurfaceCorrection, cycle.Position, stop.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && run.Commands.AnyPosted.IsCancellationRequested)
        {
            var error = await safety.HoldAndRetractAsync("surface re-check stopped: " + run.Commands.Posted?.Reason, CancellationToken.None);
            if (error.Length > 0) throw new GantryFaultException(GantryFaultKind.Protocol, 0, "stopping the surface re-check failed: " + error);
            ledger.Audit(run.SessionId, "surface-check-stopped", $"the surface re-check before dot {next.DotId} was stopped ({run.Commands.Posted?.Reason}); the needle is up, the registration stands");
            return null; // the run ends as its command says; the needle drive stays off
        }
        finally
        {
            run.ProbeUnderWay = false;
        }
        if (moved is not null) return moved;
        await cycle.BeginAsync(ct);
        return null;
    }

    /// <summary>The hold's words at the end of a head position: what is done and what the operator does next.</summary>
    private static string NextPositionText(SessionRun run, int done, int next)
    {
        var position = run.Patches.Position(next);
        var finished = done == 0 ? "the dots of the head's nominal position are placed" : $"head position {done} of {run.Patches.Count} is done";
        return position is null
            ? $"{finished}; next, the head's nominal position: put the head back upright, then resume"
            : $"{finished}; next, head position {next} of {run.Patches.Count}: {position.Instruction}; position the head, then resume";
    }

    /// <summary>The end of a run that placed what it could: paused when dots are in doubt or still pending, else null (completed).</summary>
    private (SessionPhase, string)? Unfinished(string sessionId)
    {
        var tally = ledger.Tally(sessionId);
        if (tally.InDoubt > 0) return (SessionPhase.Paused, $"all other dots done; {tally.InDoubt} dot(s) in doubt await the operator's decision");
        if (tally.Pending > 0) return (SessionPhase.Paused, $"{tally.Pending} dot(s) still pending");
        return null;
    }

    /// <summary>Why a run ended on a failure: the command it was obeying, else the latch, else the failure itself.</summary>
    private (SessionPhase, string) Failure(SessionRun run, Exception e) =>
        run.Commands.Take() is { } stop ? (stop.EndPhase, stop.Reason)
        : safety.IsLatched ? (SessionPhase.EmergencyStopped, "emergency stop")
        : (SessionPhase.Faulted, FaultText(e));

    private void PersistTimersIfDue(SessionRun run)
    {
        if (timeProvider.GetElapsedTime(run.TimersPersistedAt) < TimersPersistEvery) return;
        run.TimersPersistedAt = timeProvider.GetTimestamp();
        try
        {
            ledger.UpdateTimers(run.SessionId, run.ElapsedSeconds(timeProvider, gantry.TimeScale), run.KinematicSeconds);
        }
        catch (StoreUnavailableException)
        {
            // Only the crash figure: the next dot's write holds the cycle if the store is still away.
        }
    }

    private static string FaultText(Exception e) => e switch
    {
        GantryFaultException g when g.Kind == GantryFaultKind.Alarm => $"gantry alarm {g.Code}: {g.Message}",
        GantryFaultException g => $"gantry fault ({g.Kind}): {g.Message}",
        _ => e.Message,
    };

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Session {SessionId} runs without the camera's check of its dots: {Reason}")]
        public static partial void NoDotChecks(ILogger log, string sessionId, string reason);

        [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId} failed")]
        public static partial void Failed(ILogger log, Exception error, string sessionId);

        [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId}: an intent whose commit was cut off could not be withdrawn at the end of the run ({Error}); it is withdrawn with the run's end once the store answers (no plunge line was written for it)")]
        public static partial void IntentNotWithdrawn(ILogger log, string sessionId, string error);

        [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId}: dot {DotId} could not be recorded at the end of the run ({Error}); it is written with the run's end once the store answers (Commanded until then; in doubt after a restart)")]
        public static partial void NotRecorded(ILogger log, string sessionId, string dotId, string error);

        [LoggerMessage(Level = LogLevel.Error, Message = "Motion-hold retract failed: {Error}")]
        public static partial void RetractFailed(ILogger log, string error);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Session {SessionId} holds for the operator: {Reason}")]
        public static partial void HoldsForOperator(ILogger log, string sessionId, string reason);
    }
}
