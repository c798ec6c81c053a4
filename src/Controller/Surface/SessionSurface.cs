using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Planning;
using HeightMap = SmpRobot.Treatment.Surface.HeightMap;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Surface;

/// <summary>
/// A session's surface registration: which head position, which model and which skin points to probe, from the
/// session's plan and the head model it was created with; then <see cref="SurfaceProbing"/>.
/// </summary>
public sealed class SessionSurface(LedgerStore ledger, SurfaceProbing probing, IHeadPoseSource poses)
{
    /// <summary>Probes when the request gives none.</summary>
    public const int DefaultPoints = 16;

    /// <summary>Fewest and most probes a request may ask for.</summary>
    public const int MinPoints = 6, MaxPoints = 64;

    /// <summary>
    /// Probes head position <paramref name="patch"/> (0: the plan's first) of session <paramref name="sessionId"/> at
    /// <paramref name="points"/> of its dots (0: <see cref="DefaultPoints"/>) and registers the session's head model.
    /// </summary>
    /// <exception cref="RefusedException">No such session, a finished one, no head model, a bad request, or probing refused.</exception>
    public async Task<SurfaceProbeOutcome> ProbeAsync(string sessionId, int patch, int points, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (points == 0) points = DefaultPoints;
        if (points is < MinPoints or > MaxPoints) throw new RefusedException(RefusalKind.InvalidArgument, $"probes must be {MinPoints}..{MaxPoints}, not {points}");
        var session = ledger.FindSession(sessionId) ?? throw new RefusedException(RefusalKind.NotFound, $"no session {sessionId}");
        if (session.Phase is SessionPhase.Completed or SessionPhase.Aborted)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} is {session.Phase.ToString().ToUpperInvariant()}: its scalp is not probed any more");
        }
        var plan = Plan.Parser.ParseJson(ledger.LoadPlanJson(sessionId)!);
        var patches = plan.Patches;
        if (patch == 0 && patches.Count > 0) patch = (int)patches.Min(p => p.Number);
        if (patch != 0 && patches.All(p => p.Number != patch))
        {
            throw new RefusedException(RefusalKind.InvalidArgument, $"session {sessionId}'s plan has no head position {patch} (it has {(patches.Count == 0 ? "none" : string.Join(", ", patches.Select(p => p.Number)))})");
        }
        var dots = plan.Dots.Where(d => patch == 0 || d.Patch == patch).Select(d => new Vec3(d.XMm, d.YMm, d.ZMm)).ToList();
        if (dots.Count == 0) throw new RefusedException(RefusalKind.FailedPrecondition, $"head position {patch} has no dots to probe around");
        var headPose = patch == 0 ? RigidTransform.Identity : DesignPlans.FromMessage(patches.First(p => p.Number == patch).HeadPose);
        // A still head is where the plan's head position puts it (the operator turned it, as told); a tracked one is seen.
        Action enter = () => { if (poses is FixedHeadPoseSource still) still.HeadPose = headPose; };

        var source = plan.Source;
        if (source is null || source.HeadModelSha256.Length == 0)
        {
            // No model of this head: a height map over the dots, each node probed from above the plan's own height there.
            HeightMap grid;
            try
            {
                grid = HeightMap.Over(dots, points, HeightMapMarginMm, HeightMapMaxCellMm, MaxHeightMapNodes);
            }
            catch (ArgumentException e)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, $"head position {patch}: {e.Message}; nothing was probed");
            }
            double PlanZ(double x, double y) => dots.MinBy(d => ((d.X - x) * (d.X - x)) + ((d.Y - y) * (d.Y - y))).Z;
            return await probing.ProbeHeightMapAsync(grid, PlanZ, sessionId, patch, new SurfaceProbeOptions(), ct, enter);
        }
        var (fileName, bytes) = ledger.LoadHeadModel(source.HeadModelSha256)
            ?? throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} was created without its head model ({source.HeadModelFile}): create it with `smp run`, which sends the file beside the plan");
        var model = MeshReader.Read(bytes, fileName);
        var nominal = DesignPlans.FromMessage(source.HeadFromScalp);
        // A patch of few dots is probed around them too: the model's skin within a few millimetres of them.
        var candidates = dots.Count >= points ? dots : [.. dots, .. Around(model, nominal, dots, AroundMm)];
        // Spread over the patch, then visited nearest first: short moves, none across the whole patch.
        var aims = NearestFirst(Spread(candidates, Math.Min(points, candidates.Count)));
        if (aims.Count < MinPoints) throw new RefusedException(RefusalKind.FailedPrecondition, $"head position {patch} offers only {aims.Count} points to probe: too few for a registration ({MinPoints})");
        return await probing.ProbeAsync(model, source.HeadModelSha256, nominal, aims, sessionId, patch, new SurfaceProbeOptions(), ct, enter);
    }

    /// <summary>How far a height map reaches beyond the outermost dots, mm: every dot lies inside it, not on its edge.</summary>
    public const double HeightMapMarginMm = 1;

    /// <summary>
    /// The widest cell of a height map, mm: more nodes are probed than asked for where the area needs them, so the
    /// interpolated skin stays within micrometres of a scalp's curvature between them.
    /// </summary>
    public const double HeightMapMaxCellMm = 5;

    /// <summary>Most nodes a height map probes (a 45 × 45 mm head position at 5 mm); a larger one is refused.</summary>
    public const int MaxHeightMapNodes = 100;

    /// <summary>How far from a few-dot patch's dots its extra probe points may lie, mm.</summary>
    public const double AroundMm = 8;

    /// <summary>The model's vertices (in H, at its nominal placement) within <paramref name="radiusMm"/> of any of <paramref name="dotsH"/>.</summary>
    private static IEnumerable<Vec3> Around(TriangleMesh model, RigidTransform nominal, IReadOnlyList<Vec3> dotsH, double radiusMm) =>
        model.Vertices.Select(nominal.Apply).Where(v => dotsH.Any(d => d.DistanceTo(v) <= radiusMm));

    /// <summary>
    /// <paramref name="count"/> of <paramref name="points"/> spread over them: the one nearest their centroid, then
    /// each time the one farthest from all chosen (farthest-point sampling), so the probes cover the patch.
    /// </summary>
    public static IReadOnlyList<Vec3> Spread(IReadOnlyList<Vec3> points, int count)
    {
        ArgumentNullException.ThrowIfNull(points);
        var centroid = points.Aggregate(Vec3.Zero, (a, p) => a + p) * (1.0 / points.Count);
        var nearest = new double[points.Count];
        var first = Enumerable.Range(0, points.Count).MinBy(i => points[i].DistanceTo(centroid));
        var chosen = new List<Vec3> { points[first] };
        for (var i = 0; i < points.Count; i++) nearest[i] = points[i].DistanceTo(points[first]);
        while (chosen.Count < count)
        {
            var far = 0;
            for (var i = 1; i < points.Count; i++) if (nearest[i] > nearest[far]) far = i;
            chosen.Add(points[far]);
            for (var i = 0; i < points.Count; i++) nearest[i] = Math.Min(nearest[i], points[i].DistanceTo(points[far]));
        }
        return chosen;
    }

    /// <summary><paramref name="points"/> reordered as a greedy tour: from the first, each time the nearest not yet visited.</summary>
    public static IReadOnlyList<Vec3> NearestFirst(IReadOnlyList<Vec3> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        var left = points.ToList();
        var tour = new List<Vec3>(left.Count);
        if (left.Count == 0) return tour;
        var at = left[0];
        left.RemoveAt(0);
        tour.Add(at);
        while (left.Count > 0)
        {
            var next = Enumerable.Range(0, left.Count).MinBy(i => left[i].DistanceTo(at));
            at = left[next];
            left.RemoveAt(next);
            tour.Add(at);
        }
        return tour;
    }

    /// <summary>The registration as the service returns it.</summary>
    public static SurfaceRegistration ToProto(SurfaceRegistrationRecord r, IReadOnlyList<ProbeContact>? contacts, RigidTransform? headFromScalp, double seconds)
    {
        ArgumentNullException.ThrowIfNull(r);
        var reply = new SurfaceRegistration
        {
            Id = r.Id,
            SessionId = r.SessionId ?? "",
            Patch = (uint)r.Patch,
            CreatedAt = r.CreatedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            Valid = r.Valid,
            Notes = r.Notes,
            WithdrawnBecause = r.WithdrawnBecause ?? "",
            HeightMap = r.HeightMapJson is not null,
            RmsMm = r.RmsMm,
            P95Mm = r.P95Mm,
            MaxMm = r.MaxMm,
            Contacts = (uint)r.Contacts,
            Inliers = (uint)r.Inliers,
            Seconds = seconds,
            HeadFromScalp = headFromScalp is { } t ? DesignPlans.ToMessage(t) : JsonParser.Default.Parse<FrameTransform>(r.HeadFromScalpJson),
        };
        foreach (var c in contacts ?? [])
        {
            reply.ContactPoints.Add(new SurfaceContact
            {
                Index = (uint)c.Index,
                AimXMm = c.AimH.X, AimYMm = c.AimH.Y, AimZMm = c.AimH.Z,
                ContactXMm = c.ContactH.X, ContactYMm = c.ContactH.Y, ContactZMm = c.ContactH.Z,
                ResidualMm = c.ResidualMm,
                Inlier = c.Inlier,
            });
        }
        return reply;
    }
}
