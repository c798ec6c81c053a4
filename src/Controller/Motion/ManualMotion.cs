using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Motion;

/// <summary>
/// The operator's own moves outside a session: the homing cycle and relative jogs. Each takes the
/// machine's lease for as long as it moves (<see cref="MachineReadiness.Take"/>), and a caller that
/// cancels stops the move (homing by a reset, a jog by grbl's jog cancel) instead of leaving it to run
/// unwatched.
/// </summary>
public sealed class ManualMotion(GantryConnection gantry, MachineReadiness readiness, LedgerStore ledger, MachineProfile profile, TimeProvider timeProvider)
{
    /// <summary>How often a jog's end is looked for (grbl reports "Jog" until it has decelerated).</summary>
    private static readonly TimeSpan JogPollInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>Runs the homing cycle; refused while anything else holds the machine or the e-stop is latched, or while the firmware is held.</summary>
    public async Task HomeAsync(CancellationToken cancellationToken)
    {
        using var lease = readiness.Take(MachineUse.Home, "homing cycle", "home", needsHoming: false);
        // A shutdown stops it as its caller's Ctrl+C does.
        var callerToken = cancellationToken;
        using var stoppingAtShutdown = readiness.Lease.StopsAtShutdown(callerToken);
        cancellationToken = stoppingAtShutdown.Token;
        var client = gantry.RequireClient();
        var status = await client.QueryStatusAsync(cancellationToken);
        if (status.IsHold)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"the gantry is in {status.State}; reset the e-stop or resume before homing");
        }
        try
        {
            await gantry.HomeAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && gantry.IsConnected)
        {
            // Stopped by its caller: a homing cycle cannot be held, only reset (grbl then reports it
            // failed and the machine stays unhomed). Not left to run on unwatched. The reset runs inside an
            // activity, so that whoever waits for "nothing under way" reads the state after it.
            using (var stopping = gantry.Activity.Begin("homing"))
            {
                stopping.Doing("stopping: soft reset of the homing cycle");
                await client.SoftResetAsync(CancellationToken.None);
            }
            var stopped = $"homing cycle {readiness.Lease.StopCause} (soft reset): the machine is not homed";
            ledger.Audit(null, "homing-stopped", stopped);
            if (!callerToken.IsCancellationRequested) throw new RefusedException(RefusalKind.FailedPrecondition, stopped);
            throw;
        }
        ledger.Audit(null, "homed", "homing cycle completed");
    }

    /// <summary>
    /// A relative jog of <paramref name="deltaMm"/> inside the envelope at <paramref name="feedMmPerMin"/>
    /// (0: the profile's travel feed); returns once the jog has ended. Refused (InvalidArgument) for a
    /// move that is not finite, too long, too fast or leaves the envelope; (FailedPrecondition) while
    /// anything else holds the machine, the e-stop is latched or the machine is not homed.
    /// </summary>
    public async Task JogAsync(Vec3 deltaMm, double feedMmPerMin, CancellationToken cancellationToken)
    {
        if (!deltaMm.IsFinite || deltaMm.Length > Math.Max(profile.MaxTravelMm.X, profile.MaxTravelMm.Y))
        {
            throw new RefusedException(RefusalKind.InvalidArgument, $"jog {deltaMm} mm is not a finite move inside the machine");
        }
        if (!double.IsFinite(feedMmPerMin) || feedMmPerMin < 0 || feedMmPerMin > profile.TravelFeedMmPerMin)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, FormattableString.Invariant(
                $"jog feed {feedMmPerMin} mm/min is not allowed: give 0 (the profile's travel feed) or up to {profile.TravelFeedMmPerMin:0} mm/min (profile {profile.Name})"));
        }
        using var lease = readiness.Take(MachineUse.Jog, "jog", "jog");
        var callerToken = cancellationToken;
        using var stoppingAtShutdown = readiness.Lease.StopsAtShutdown(callerToken);
        cancellationToken = stoppingAtShutdown.Token;
        var feed = feedMmPerMin > 0 ? feedMmPerMin : profile.TravelFeedMmPerMin;
        var client = gantry.RequireClient();
        using var activity = gantry.Activity.Begin("jog", 1);
        var status = await client.QueryStatusAsync(cancellationToken);
        var target = new StepGrid(profile.StepsPerMm).Quantise(status.MachinePosition + deltaMm);
        if (!profile.InEnvelope(target))
        {
            throw new RefusedException(RefusalKind.InvalidArgument, $"jog target {target} is outside the machine envelope ({profile.EnvelopeText()}, profile {profile.Name})");
        }
        var jog = MachineLines.Jog(target, feed, new Kinematics(profile).Move(status.MachinePosition, target, feed).DurationSeconds);
        // A jog's ok comes when it is queued (nothing ahead of it).
        var bound = AckPolicy.Bound(0, gantry.TimeScale);
        var ack = await client.ExecuteAsync(jog.Line, CancellationToken.None).WaitAsync(bound, timeProvider, CancellationToken.None);
        if (!ack.Ok) throw new RefusedException(RefusalKind.FailedPrecondition, $"jog refused by the firmware: error:{ack.ErrorCode} {ack.ErrorText}");
        try
        {
            // grbl answers other G-code with error:9 while it jogs (no G4 sync): follow its state until the jog has ended.
            var end = AckPolicy.Bound(jog.KinematicSeconds, gantry.TimeScale);
            var started = timeProvider.GetTimestamp();
            while ((await client.QueryStatusAsync(cancellationToken)).State == "Jog")
            {
                if (timeProvider.GetElapsedTime(started) > end) throw new TimeoutException(FormattableString.Invariant($"the jog did not end within {end.TotalSeconds:0.0} s"));
                await Task.Delay(JogPollInterval, timeProvider, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopped by its caller: grbl's jog cancel decelerates and drops the rest of the jog.
            await client.SendRealtimeAsync(GrblRealtime.JogCancel, CancellationToken.None);
            var stopped = $"jog {readiness.Lease.StopCause} (jog cancel)";
            ledger.Audit(null, "jog-stopped", stopped);
            if (!callerToken.IsCancellationRequested) throw new RefusedException(RefusalKind.FailedPrecondition, stopped);
            throw;
        }
    }
}
