using System.Globalization;
using System.Text.Json;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Surface;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Surface;

/// <summary>How a surface probe runs and what it accepts. Lengths in mm.</summary>
public sealed record SurfaceProbeOptions
{
    /// <summary>Probe feed, mm/min: slow, so the needle head stops a few micrometres past the contact. Default 60.</summary>
    public double FeedMmPerMin { get; init; } = 60;

    /// <summary>Each probe starts this far above where the model (at its nominal placement) puts the skin. Default 2.</summary>
    public double ApproachMm { get; init; } = 2;

    /// <summary>
    /// …and may go at most this far below it: the probe's bounded distance past the expected skin, which a probe
    /// that never triggers (a cut wire) reaches before the firmware stops it with ALARM:5. Default 1.5.
    /// </summary>
    public double BeyondMm { get; init; } = 1.5;

    /// <summary>
    /// Extra height of the moves between probes: over the highest skin the model puts under their path (plus the
    /// approach), and over both ends. Default 3.
    /// </summary>
    public double TraverseClearanceMm { get; init; } = 3;

    /// <summary>
    /// Feed of the watched descents from the traverse height to a probe's start (G38.3: they stop at any contact), mm/min.
    /// Default 240: quick enough for a breathing head, and a contact stops a few hundredths of a millimetre past the skin.
    /// </summary>
    public double DescentFeedMmPerMin { get; init; } = 240;

    /// <summary>Largest RMS of the fit's residuals for a valid registration. Default 0.05.</summary>
    public double MaxRmsMm { get; init; } = 0.05;

    /// <summary>Largest residual of a contact the fit rests on. Default 0.15.</summary>
    public double MaxResidualMm { get; init; } = 0.15;

    /// <summary>Smallest share of the contacts the fit must rest on (the rest are outliers: hair, a swab). Default 0.8.</summary>
    public double MinInlierFraction { get; init; } = 0.8;
}

/// <summary>One probe: where it was aimed and what it touched.</summary>
/// <param name="Index">1-based, in probing order.</param>
/// <param name="AimH">The model's skin point it was aimed at, frame H (nominal placement).</param>
/// <param name="StartG">Where it started, machine frame.</param>
/// <param name="ContactG">Where the probe input triggered (grbl's [PRB:…]), machine frame.</param>
/// <param name="ContactH">The contact in H, with the head pose at the moment of contact.</param>
/// <param name="ResidualMm">Its distance to the fitted model along the normal (+: outside), mm; NaN before the fit.</param>
/// <param name="Inlier">Whether the fit rests on it.</param>
public sealed record ProbeContact(int Index, Vec3 AimH, Vec3 StartG, Vec3 ContactG, Vec3 ContactH, double ResidualMm, bool Inlier);

/// <summary>A probe refused: why, and whether it tells that the skin or the probe is not as registered.</summary>
/// <param name="message">The refusal, in words.</param>
/// <param name="skinOrProbeInDoubt">
/// True when the probe itself says so (nothing touched: ALARM:5; touching before moving: ALARM:4; skin touched on the
/// way down); false when it was refused for another reason (tracking, a moving head, the machine's state).
/// </param>
public sealed class SurfaceProbeRefusedException(string message, bool skinOrProbeInDoubt) : RefusedException(RefusalKind.FailedPrecondition, message)
{
    /// <summary>The skin or the probe is not as registered.</summary>
    public bool SkinOrProbeInDoubt { get; } = skinOrProbeInDoubt;
}

/// <summary>A session's re-check of its registration: one contact and how far it is from the registered surface.</summary>
/// <param name="Contact">The probe's contact (its residual is the deviation).</param>
/// <param name="DeviationMm">The contact's distance to the registered surface along its normal (+: the skin is outside it), mm.</param>
public sealed record SurfaceCheck(ProbeContact Contact, double DeviationMm);

/// <summary>A surface probe's outcome: the registration stored (valid or not) and every contact.</summary>
public sealed record SurfaceProbeOutcome(SurfaceRegistrationRecord Record, RigidTransform HeadFromScalp, IReadOnlyList<ProbeContact> Contacts, double Seconds);

/// <summary>
/// Measures the scalp under the needle: probes the skin at points of today's patch with the needle head's contact
/// probe (grbl's G38.2, needle drive off, slow feed, a bounded distance past where the model puts the skin),
/// carries each contact into the head frame with the head pose at the moment of contact, fits the head model to the
/// contacts (<see cref="SurfaceRegistration"/>) and stores the registration, valid when its residuals are within the
/// tolerances. Holds the machine's lease and shows as its activity while it moves. A probe that touches nothing, one
/// that reads touching before it moves, a head that moved during a probe, or a model that does not fit: each refuses
/// with its reason (<see cref="RefusedException"/>), and the needle is back up at its start before the refusal.
/// </summary>
public sealed class SurfaceProbing(GantryConnection gantry, MachineReadiness readiness, MotionLink motion, SafetySupervisor safety, IHeadPoseSource poses, MachineProfile profile, LedgerStore ledger, TimeProvider time)
{
    private readonly DotProgram _program = new(profile);
    private readonly Kinematics _kinematics = new(profile);

    /// <summary>
    /// Probes <paramref name="aimsH"/> (skin points of the model in H at its nominal placement, e.g. a spread of the
    /// patch's dots) and registers <paramref name="model"/> to the contacts. Stores the registration (valid or not)
    /// and returns it; refuses (and stores nothing) when probing itself failed.
    /// </summary>
    /// <param name="enterHeadPosition">Run once the machine is held (nothing else moves it): a still head takes the pose of the head position probed.</param>
    public async Task<SurfaceProbeOutcome> ProbeAsync(TriangleMesh model, string modelSha256, RigidTransform nominalHeadFromScalp, IReadOnlyList<Vec3> aimsH,
        string? sessionId, int patch, SurfaceProbeOptions options, CancellationToken ct, Action? enterHeadPosition = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(aimsH);
        ArgumentNullException.ThrowIfNull(options);
        var fitOptions = new SurfaceFitOptions();
        if (aimsH.Count < fitOptions.MinInliers) throw new RefusedException(RefusalKind.InvalidArgument, $"a surface probe needs at least {fitOptions.MinInliers} points, not {aimsH.Count}");
        return await ProbeAllAsync(aimsH, ModelSkin(model, nominalHeadFromScalp), sessionId, enterHeadPosition, options, "fitting the head model",
            (contacts, seconds) => Register(model, modelSha256, nominalHeadFromScalp, contacts, sessionId, patch, options, fitOptions, seconds), ct);
    }

    /// <summary>
    /// The probing both kinds of registration share: under the machine's lease (<see cref="MachineUse.Surface"/>), shown
    /// as its activity, needle drive off, each aim probed in turn (<see cref="ProbeOneAsync"/>), then
    /// <paramref name="register"/> with every contact and the seconds it took. A probe's refusal says nothing was
    /// stored; a cancelled probe stops the motion (feed hold, queue flushed, needle up).
    /// </summary>
    private async Task<SurfaceProbeOutcome> ProbeAllAsync(IReadOnlyList<Vec3> aimsH, Func<RigidTransform, Vec3, Vec3, double> highestSkinG, string? sessionId,
        Action? enterHeadPosition, SurfaceProbeOptions options, string registering, Func<List<ProbeContact>, double, SurfaceProbeOutcome> register, CancellationToken ct)
    {
        if (!(options.BeyondMm > 0) || options.ApproachMm + options.BeyondMm > DotProgram.MaxVerticalStepMm)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, FormattableString.Invariant($"a probe runs more than 0 and at most {DotProgram.MaxVerticalStepMm} mm (approach {options.ApproachMm} + beyond {options.BeyondMm})"));
        }
        using var lease = readiness.Take(MachineUse.Surface, "surface probe", "probe the scalp");
        // A shutdown stops it as its caller's Ctrl+C does.
        var callerToken = ct;
        using var stoppingAtShutdown = readiness.Lease.StopsAtShutdown(callerToken);
        ct = stoppingAtShutdown.Token;
        enterHeadPosition?.Invoke();
        using var activity = gantry.Activity.Begin("surface probe", aimsH.Count);
        var started = time.GetTimestamp();
        try
        {
            var status = await gantry.RequireClient().QueryStatusAsync(ct);
            if (!status.IsIdle) throw new RefusedException(RefusalKind.FailedPrecondition, $"the gantry is {status.State}, not Idle");
            await motion.SetUpAsync([MachineLines.DriveOff, MachineLines.AbsoluteMm], ct);
            var position = status.MachinePosition;
            var contacts = new List<ProbeContact>();
            for (var i = 0; i < aimsH.Count; i++)
            {
                activity.Doing(string.Create(CultureInfo.InvariantCulture, $"probe {i + 1} of {aimsH.Count}"));
                var (contact, end) = await ProbeOneAsync(i + 1, aimsH[i], position, highestSkinG, options, ct);
                position = end;
                contacts.Add(contact);
                activity.StepDone();
            }
            activity.Doing(registering);
            return register(contacts, time.GetElapsedTime(started).TotalSeconds);
        }
        catch (SurfaceProbeRefusedException e)
        {
            throw new SurfaceProbeRefusedException(e.Message + "; nothing was stored", e.SkinOrProbeInDoubt);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested && gantry.IsConnected && !safety.IsLatched)
        {
            activity.Doing("stopping: feed hold, queue flushed, needle up");
            var stopped = "surface probe " + readiness.Lease.StopCause;
            var error = await safety.HoldAndRetractAsync(stopped, CancellationToken.None);
            stopped += ": " + (error.Length == 0 ? "motion stopped, nothing stored" : "stopping the motion failed: " + error);
            ledger.Audit(sessionId, "surface-probe-stopped", stopped);
            if (!callerToken.IsCancellationRequested) throw new RefusedException(RefusalKind.FailedPrecondition, stopped);
            throw;
        }
    }

    /// <summary>
    /// Where a plan has no head model: probes the nodes of <paramref name="grid"/> (frame H, over the head position's
    /// dots), each from <see cref="SurfaceProbeOptions.ApproachMm"/> above the plan's own skin height there
    /// (<paramref name="expectedZAt"/>), exactly as a registration's probes run, and stores the measured heights as a
    /// height-map registration: the dots of that head position are then placed on the measured skin, between the nodes
    /// (Catmull–Rom). Valid when every node was touched within the probe's bounded distance; the contacts' differences
    /// from the plan's heights are its residuals (what the plan had wrong). Refuses as a registration does.
    /// </summary>
    public async Task<SurfaceProbeOutcome> ProbeHeightMapAsync(HeightMap grid, Func<double, double, double> expectedZAt, string? sessionId, int patch, SurfaceProbeOptions options, CancellationToken ct, Action? enterHeadPosition = null)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(expectedZAt);
        ArgumentNullException.ThrowIfNull(options);
        var aimsH = new List<Vec3>(grid.Columns * grid.Rows);
        for (var row = 0; row < grid.Rows; row++)
        {
            for (var column = 0; column < grid.Columns; column++)
            {
                // Serpentine: each row walked the other way, so every move is to a neighbour.
                var c = row % 2 == 0 ? column : grid.Columns - 1 - column;
                var (x, y) = grid.Node(c, row);
                aimsH.Add(new Vec3(x, y, expectedZAt(x, y)));
            }
        }
        // Travel clears the highest skin the plan puts anywhere on the grid: no model says where it is in between.
        Func<RigidTransform, Vec3, Vec3, double> highest = (gantryFromHead, _, _) => aimsH.Max(a => gantryFromHead.Apply(a).Z);
        return await ProbeAllAsync(aimsH, highest, sessionId, enterHeadPosition, options, "building the height map", (contacts, seconds) =>
        {
            // Back in grid order (row by row). A probe comes down along gantry Z, which in a turned head position (or
            // on a swaying head) is not H's Z: it touches beside its node. Each node's height is its contact's, carried
            // to the node along the skin's slope there (twice: the slope from the map of the previous pass).
            var node = new int[contacts.Count];
            var scored = new List<ProbeContact>(contacts.Count);
            for (var i = 0; i < contacts.Count; i++)
            {
                var row = i / grid.Columns;
                node[i] = (row * grid.Columns) + (row % 2 == 0 ? i % grid.Columns : grid.Columns - 1 - (i % grid.Columns));
                var aside = Math.Sqrt(Math.Pow(contacts[i].ContactH.X - aimsH[i].X, 2) + Math.Pow(contacts[i].ContactH.Y - aimsH[i].Y, 2));
                if (aside > MaxContactAsideMm)
                {
                    throw new RefusedException(RefusalKind.FailedPrecondition, FormattableString.Invariant($"surface probe {i + 1} touched the skin {aside:0.00} mm beside its grid node (at most {MaxContactAsideMm:0.#}): the head is turned too far from the needle for a height map here; nothing was stored"));
                }
                scored.Add(contacts[i] with { ResidualMm = contacts[i].ContactH.Z - aimsH[i].Z, Inlier = true });
            }
            var heights = new double[grid.Columns * grid.Rows];
            for (var i = 0; i < contacts.Count; i++) heights[node[i]] = contacts[i].ContactH.Z;
            var map = grid.WithHeights(heights);
            for (var pass = 0; pass < 2; pass++)
            {
                for (var i = 0; i < contacts.Count; i++)
                {
                    var c = contacts[i].ContactH;
                    var n = map.NormalAt(Math.Clamp(c.X, map.MinXMm, map.MaxXMm), Math.Clamp(c.Y, map.MinYMm, map.MaxYMm));
                    heights[node[i]] = c.Z - ((n.X / n.Z) * (aimsH[i].X - c.X)) - ((n.Y / n.Z) * (aimsH[i].Y - c.Y));
                }
                map = grid.WithHeights(heights);
            }
            var off = scored.Select(c => Math.Abs(c.ResidualMm)).Order().ToList();
            var rms = Math.Sqrt(off.Sum(r => r * r) / off.Count);
            var p95 = off[Math.Min(off.Count - 1, (int)Math.Ceiling(0.95 * off.Count) - 1)];
            var record = ledger.SaveSurfaceRegistration(sessionId, patch, LedgerStore.HeightMapModel, TransformJson(RigidTransform.Identity), rms, p95, off[^1], scored.Count, scored.Count,
                ContactsJson(scored), valid: true,
                FormattableString.Invariant($"height map of {grid.Columns} × {grid.Rows} nodes, {grid.StepXMm:0.0} × {grid.StepYMm:0.0} mm apart (the plan names no head model); residuals: the skin against the plan's heights"),
                map.ToJson());
            return new SurfaceProbeOutcome(record, RigidTransform.Identity, scored, seconds);
        }, ct);
    }

    /// <summary>
    /// A running session's re-check of the scalp it places on: one probe at <paramref name="skinH"/> (a skin point of
    /// the registered surface, frame H), needle drive off, exactly as a registration's probes run, from
    /// <paramref name="current"/> (where the needle is, at hover). Returns the contact's distance to the registered
    /// surface along its normal; the caller decides against its tolerance and sets the needle drive up again.
    /// Runs under the caller's lease (the session holds the machine). Refuses as a registration's probe does
    /// (touching nothing, touching too soon, a head that moved), with the needle back up.
    /// </summary>
    /// <param name="model">The head model, frame S.</param>
    /// <param name="registeredHeadFromScalp">T_HS of the registration in use.</param>
    public async Task<SurfaceCheck> CheckAsync(TriangleMesh model, RigidTransform registeredHeadFromScalp, Vec3 skinH, Vec3 current, SurfaceProbeOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        await motion.SetUpAsync([MachineLines.DriveOff, MachineLines.AbsoluteMm], ct);
        var (contact, _) = await ProbeOneAsync(1, skinH, current, ModelSkin(model, registeredHeadFromScalp), options, ct);
        var inScalp = Rotations.Inverse(registeredHeadFromScalp).Apply(contact.ContactH);
        const double SearchMm = 10;
        var deviation = model.ClosestPoint(inScalp, SearchMm) is { } hit
            ? Vec3.Dot(inScalp - hit.Point, model.NormalAt(hit))
            : double.PositiveInfinity;
        return new SurfaceCheck(contact with { ResidualMm = deviation }, deviation);
    }

    /// <summary>One probe: travel above the aim, probe down, read the contact, back up to the start. Returns the contact and where the needle is.</summary>
    /// <param name="highestSkinG">The highest skin under the straight XY path between two machine points, with the head at a pose (machine Z; −∞ where none).</param>
    private async Task<(ProbeContact Contact, Vec3 End)> ProbeOneAsync(int index, Vec3 aimH, Vec3 current, Func<RigidTransform, Vec3, Vec3, double> highestSkinG, SurfaceProbeOptions options, CancellationToken ct)
    {
        var before = CurrentPose(index, "before");
        var aimG = before.GantryFromHead.Apply(aimH);
        var start = _program.Grid.Quantise(aimG with { Z = aimG.Z + options.ApproachMm });
        if (!profile.InEnvelope(start)) throw Refused(index, $"its start {start} is outside the machine envelope: turn the head so the patch faces the needle");
        // Across: above the highest skin the model puts under the path (a crown between two probes is higher than both).
        var highest = highestSkinG(before.GantryFromHead, current, start) + options.ApproachMm;
        var traverse = _program.Grid.Quantise(start with { Z = Math.Min(profile.Envelope.Max.Z, Math.Max(highest, Math.Max(current.Z, start.Z)) + options.TraverseClearanceMm) });
        var above = traverse with { X = start.X, Y = start.Y };
        var up = current with { Z = traverse.Z };
        await motion.MoveAndSyncAsync([.. _program.Travel(current, up), .. _program.Travel(up, above)], ct);
        // Down to the start watching the probe, in two legs, because the head breathes while the needle comes down: to
        // one approach above the start, then from a fresh pose to the start itself (a short leg, so the skin cannot move
        // far meanwhile). Skin higher than the model puts it is touched and reported, not pressed.
        var position = await DescendWatchingAsync(index, above, Math.Max(start.Z, Math.Min(above.Z, start.Z + options.ApproachMm)), above, options, ct);
        start = FreshStart(index, aimH, options, start);
        if (start.Z > position.Z) await LiftToAsync(start.Z, ct);
        else position = await DescendWatchingAsync(index, position, start.Z, above, options, ct);
        // Once more: if the skin moved while the needle came down the last leg, the start follows it.
        var fresh = FreshStart(index, aimH, options, start);
        if (fresh.Z > start.Z + RestartMm)
        {
            await LiftToAsync(fresh.Z, ct);
            start = fresh;
        }
        else if (fresh.Z < start.Z - RestartMm)
        {
            await DescendWatchingAsync(index, start, fresh.Z, above, options, ct);
            start = (await gantry.RequireClient().QueryStatusAsync(ct)).MachinePosition;
        }
        var at = await gantry.RequireClient().QueryStatusAsync(ct);
        if (!at.IsIdle || at.MachinePosition.DistanceTo(start) > 0.01) throw Refused(index, $"the gantry is {at.State} at {at.MachinePosition}, not at the probe's start {start}");

        var distance = _program.Grid.Quantise(new Vec3(0, 0, options.ApproachMm + options.BeyondMm)).Z;
        var probe = MachineLines.ProbeDown(distance, options.FeedMmPerMin);
        var sent = time.GetTimestamp();
        ProbeReport report;
        try
        {
            report = await motion.ProbeAsync(probe, ct);
        }
        catch (GantryFaultException e) when (e.Kind == GantryFaultKind.Alarm && e.Code is 4 or 5)
        {
            var end = await RecoverAsync(start, ct);
            throw ProbeSaysSo(index, e.Code == 4
                ? "the probe reads touching before it moved (ALARM:4), though the way down to its start touched nothing: the probe wire is likely shorted or its switch stuck; check it, then probe again"
                : FormattableString.Invariant($"it touched no skin within {options.BeyondMm:0.0#} mm below where the skin was expected (ALARM:5): the probe wire may be cut, or the head is not where it was tracked; the needle went {distance:0.0#} mm down and is back up at {end}"));
        }
        try
        {
            return (Contact(index, aimH, start, distance, probe, sent, report, options), start);
        }
        finally
        {
            // Whatever happens after the contact (a refusal, a lost link), the needle goes back up to the start.
            await LiftToAsync(start.Z, CancellationToken.None);
        }
    }

    /// <summary>
    /// Straight down from <paramref name="from"/> to <paramref name="toZ"/> with watched descents (G38.3, at most
    /// <see cref="DotProgram.MaxVerticalStepMm"/> each): a contact lifts the needle to <paramref name="lift"/> and refuses,
    /// a probe that reads touching before it moves (ALARM:4) unlocks, lifts and refuses. Returns where the needle is.
    /// </summary>
    private async Task<Vec3> DescendWatchingAsync(int index, Vec3 from, double toZ, Vec3 lift, SurfaceProbeOptions options, CancellationToken ct)
    {
        var descended = from;
        while (descended.Z - toZ > 1e-9)
        {
            var step = _program.Grid.Quantise(new Vec3(0, 0, Math.Min(DotProgram.MaxVerticalStepMm, descended.Z - toZ))).Z;
            if (step <= 0) break;
            ProbeReport watched;
            try
            {
                watched = await motion.ProbeAsync(MachineLines.DescendWatching(step, options.DescentFeedMmPerMin), ct);
            }
            catch (GantryFaultException e) when (e.Kind == GantryFaultKind.Alarm && e.Code == 4)
            {
                await RecoverAsync(lift, ct);
                throw ProbeSaysSo(index, "the probe reads touching before the needle head came down to the skin (ALARM:4): the probe wire is likely shorted or its switch stuck; check it, then probe again");
            }
            if (watched.Contact)
            {
                await LiftToAsync(lift.Z, ct);
                throw ProbeSaysSo(index, FormattableString.Invariant($"the needle head touched skin {watched.MachineMm.Z - toZ:0.00} mm above where it was going, on its way down to the probe's start: the skin is higher than expected there (the head model and its placement, or the plan's own heights, are off by more than the {options.ApproachMm:0.#} mm approach); the needle is back up"));
            }
            descended = descended with { Z = descended.Z - step };
        }
        return descended;
    }

    /// <summary>The probe's start (<see cref="SurfaceProbeOptions.ApproachMm"/> above the model's skin at the aim) with the head where it is now; <paramref name="start"/>'s X and Y are kept.</summary>
    private Vec3 FreshStart(int index, Vec3 aimH, SurfaceProbeOptions options, Vec3 start)
    {
        var skin = CurrentPose(index, "before").GantryFromHead.Apply(aimH);
        return start with { Z = _program.Grid.Quantise(skin with { Z = skin.Z + options.ApproachMm }).Z };
    }

    /// <summary>How far beside its grid node a height map's contact may touch (a turned head, a swaying one), mm.</summary>
    public const double MaxContactAsideMm = 1;

    /// <summary>A probe's start is moved when the skin under it moved more than this while the needle came down, mm.</summary>
    private const double RestartMm = 0.2;

    /// <summary>The contact of a probe that reported one, carried into H; refuses when it cannot be trusted.</summary>
    private ProbeContact Contact(int index, Vec3 aimH, Vec3 start, double distance, ProgramLine probe, long sent, ProbeReport report, SurfaceProbeOptions options)
    {
        if (!report.Contact) throw Refused(index, "the firmware reports no contact");

        // The moment of contact: the probe started as its line arrived (everything before it had run), then
        // accelerated to the feed; the head pose then, not when the report arrived, carries the contact into H.
        var travelled = start.Z - report.MachineMm.Z;
        var move = _kinematics.Move(start, start with { Z = start.Z - distance }, options.FeedMmPerMin);
        var machineSeconds = TimeToDistance(move, travelled);
        var wireSeconds = (probe.Line.Length + 1) * 10.0 / 115200;
        var contactTimestamp = sent + (long)(((machineSeconds / gantry.TimeScale) + wireSeconds) * time.TimestampFrequency);
        var atContact = PoseAt(index, contactTimestamp);
        var contactH = Rotations.Inverse(atContact.GantryFromHead).Apply(report.MachineMm);

        var after = CurrentPose(index, "after");
        // A head moving faster than a session may place on while the needle touched it (a flinch): the contact was
        // made on a moving skin and cannot be trusted.
        var speed = Math.Max(atContact.HeadSpeedMmPerS, after.HeadSpeedMmPerS);
        if (poses.IsTracking && speed > profile.MaxHeadSpeedMmPerS)
        {
            throw Refused(index, FormattableString.Invariant($"the head moved at {speed:0.0} mm/s while the needle touched it (a session places at most at {profile.MaxHeadSpeedMmPerS:0.#} mm/s): keep the head still, then probe again"));
        }
        return new ProbeContact(index, aimH, start, report.MachineMm, contactH, double.NaN, false);
    }

    /// <summary>Straight up to <paramref name="z"/> (machine frame) from wherever the needle stopped; nothing when already there or above.</summary>
    private async Task LiftToAsync(double z, CancellationToken ct)
    {
        var stopped = (await gantry.RequireClient().QueryStatusAsync(ct)).MachinePosition;
        var up = _program.Grid.Quantise(new Vec3(0, 0, z - stopped.Z)).Z;
        while (up > 1e-9)
        {
            var step = Math.Min(up, DotProgram.MaxVerticalStepMm);
            await motion.MoveAndSyncAsync([MachineLines.RetractStraightUp(step)], ct);
            up -= step;
        }
    }

    /// <summary>The highest skin under a path as the model placed by <paramref name="headFromScalp"/> puts it, with the head at a pose.</summary>
    private static Func<RigidTransform, Vec3, Vec3, double> ModelSkin(TriangleMesh model, RigidTransform headFromScalp) =>
        (gantryFromHead, from, to) => HighestSkinAlong(model, gantryFromHead * headFromScalp, from, to);

    /// <summary>The highest skin the model (placed by <paramref name="gantryFromScalp"/>) puts under the straight XY path from <paramref name="from"/> to <paramref name="to"/>, machine Z; −∞ where none.</summary>
    private static double HighestSkinAlong(TriangleMesh model, RigidTransform gantryFromScalp, Vec3 from, Vec3 to)
    {
        var scalpFromGantry = Rotations.Inverse(gantryFromScalp);
        var highest = double.NegativeInfinity;
        const int Samples = 24;
        for (var k = 0; k <= Samples; k++)
        {
            var x = from.X + ((to.X - from.X) * k / Samples);
            var y = from.Y + ((to.Y - from.Y) * k / Samples);
            var origin = scalpFromGantry.Apply(new Vec3(x, y, 100));
            var down = scalpFromGantry.Apply(new Vec3(x, y, 99)) - origin;
            if (model.Raycast(origin, down) is { } hit) highest = Math.Max(highest, gantryFromScalp.Apply(hit.Point).Z);
        }
        return highest;
    }

    /// <summary>After ALARM:4/5: unlock (the position is kept), then straight back up to the probe's start.</summary>
    private async Task<Vec3> RecoverAsync(Vec3 start, CancellationToken ct)
    {
        await motion.SetUpAsync([MachineLines.Unlock], ct);
        var stopped = (await gantry.RequireClient().QueryStatusAsync(ct)).MachinePosition;
        var up = _program.Grid.Quantise(new Vec3(0, 0, start.Z - stopped.Z)).Z;
        if (up > 0) await motion.MoveAndSyncAsync([MachineLines.RetractStraightUp(up)], ct);
        return (await gantry.RequireClient().QueryStatusAsync(ct)).MachinePosition;
    }

    private SurfaceProbeOutcome Register(TriangleMesh model, string modelSha256, RigidTransform nominal, List<ProbeContact> contacts, string? sessionId, int patch,
        SurfaceProbeOptions options, SurfaceFitOptions fitOptions, double seconds)
    {
        SurfaceFit fit;
        try
        {
            fit = SurfaceRegistration.Fit(model, contacts.Select(c => c.ContactH).ToList(), nominal, fitOptions);
        }
        catch (InvalidOperationException e)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, "surface registration failed: " + e.Message);
        }
        var scored = contacts.Select((c, i) => c with { ResidualMm = fit.ResidualsMm[i], Inlier = fit.Inlier[i] }).ToList();
        var problems = new List<string>();
        if (fit.RmsMm > options.MaxRmsMm) problems.Add(FormattableString.Invariant($"RMS {fit.RmsMm:0.000} mm over {options.MaxRmsMm:0.000}"));
        if (fit.MaxMm > options.MaxResidualMm) problems.Add(FormattableString.Invariant($"largest residual {fit.MaxMm:0.000} mm over {options.MaxResidualMm:0.000}"));
        if (fit.InlierCount < options.MinInlierFraction * contacts.Count) problems.Add($"only {fit.InlierCount} of {contacts.Count} contacts fit the model");
        var valid = problems.Count == 0;
        var notes = valid ? "" : "the head model does not fit the contacts: " + string.Join("; ", problems);
        var record = ledger.SaveSurfaceRegistration(sessionId, patch, modelSha256, TransformJson(fit.HeadFromScalp), fit.RmsMm, fit.P95Mm, fit.MaxMm, contacts.Count, fit.InlierCount,
            ContactsJson(scored), valid, notes);
        return new SurfaceProbeOutcome(record, fit.HeadFromScalp, scored, seconds);
    }

    private HeadPoseSample CurrentPose(int index, string when) => poses.Latest() is { } pose && (!poses.IsTracking || pose.Quality >= profile.MinPoseQuality)
        ? pose
        : throw Refused(index, $"the head is not tracked {when} it (no pose, or tracking is poor)");

    private HeadPoseSample PoseAt(int index, long timestamp)
    {
        var lookAhead = TimeSpan.FromSeconds((timestamp - time.GetTimestamp()) / (double)time.TimestampFrequency);
        return poses.Latest(lookAhead) is { } pose ? pose : throw Refused(index, "the head is not tracked at the moment of contact");
    }

    /// <summary>Machine seconds for <paramref name="move"/> to cover <paramref name="distanceMm"/> from its start (bisection on its distance profile).</summary>
    private static double TimeToDistance(TrapezoidMove move, double distanceMm)
    {
        double lo = 0, hi = move.DurationSeconds;
        if (distanceMm <= 0) return 0;
        if (distanceMm >= move.Length) return hi;
        for (var i = 0; i < 60; i++)
        {
            var mid = 0.5 * (lo + hi);
            if (move.DistanceAt(mid) < distanceMm) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>A refusal that says nothing of the skin (tracking, a moving head, the machine).</summary>
    private static SurfaceProbeRefusedException Refused(int index, string why) => new($"surface probe {index.ToString(CultureInfo.InvariantCulture)}: {why}", skinOrProbeInDoubt: false);

    /// <summary>A refusal by the probe itself: the skin is not where expected, or the probe does not work.</summary>
    private static SurfaceProbeRefusedException ProbeSaysSo(int index, string why) => new($"surface probe {index.ToString(CultureInfo.InvariantCulture)}: {why}", skinOrProbeInDoubt: true);

    /// <summary>Every probe as stored with its registration: where it was aimed, where it touched (G and H), its residual, whether it was used.</summary>
    private static string ContactsJson(IEnumerable<ProbeContact> contacts) => JsonSerializer.Serialize(contacts.Select(c => new
    {
        c.Index,
        aimH = Xyz(c.AimH),
        contactG = Xyz(c.ContactG),
        contactH = Xyz(c.ContactH),
        residualMm = double.IsFinite(c.ResidualMm) ? Math.Round(c.ResidualMm, 4) : (double?)null,
        c.Inlier,
    }));

    private static double[] Xyz(Vec3 v) => [Math.Round(v.X, 4), Math.Round(v.Y, 4), Math.Round(v.Z, 4)];

    /// <summary>The inlier contacts (frame H) a registration's contacts JSON (<see cref="ContactsJson"/>) holds; none for "[]" or empty.</summary>
    public static IReadOnlyList<Vec3> InlierContactsHFromJson(string contactsJson)
    {
        var list = new List<Vec3>();
        using var json = JsonDocument.Parse(string.IsNullOrWhiteSpace(contactsJson) ? "[]" : contactsJson);
        foreach (var c in json.RootElement.EnumerateArray())
        {
            if (c.TryGetProperty(nameof(ProbeContact.Inlier), out var inlier) && inlier.ValueKind == JsonValueKind.False) continue;
            if (!c.TryGetProperty("contactH", out var h) || h.ValueKind != JsonValueKind.Array || h.GetArrayLength() != 3) continue;
            list.Add(new Vec3(h[0].GetDouble(), h[1].GetDouble(), h[2].GetDouble()));
        }
        return list;
    }

    /// <summary>The transform <see cref="TransformJson"/> wrote.</summary>
    public static RigidTransform TransformFromJson(string json) => DesignPlans.FromMessage(Google.Protobuf.JsonParser.Default.Parse<Contracts.V1.FrameTransform>(json));

    /// <summary>T_HS as stored: the plan format's FrameTransform JSON (rotation vector in degrees, translation in mm).</summary>
    public static string TransformJson(RigidTransform t) => Google.Protobuf.JsonFormatter.Default.Format(DesignPlans.ToMessage(t));
}
