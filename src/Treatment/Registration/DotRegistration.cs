using System.Diagnostics;
using MathNet.Numerics.LinearAlgebra;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Sampling;

namespace SmpRobot.Treatment.Registration;

/// <summary>A dot of the treatment record: where it was placed, scalp frame S.</summary>
/// <param name="Id">The record's id of the dot.</param>
/// <param name="PointMm">On the skin, frame S, mm.</param>
/// <param name="Normal">Unit outward skin normal, frame S.</param>
public sealed record RecordedDot(string Id, Vec3 PointMm, Vec3 Normal);

/// <summary>A dark spot the camera saw, as the ray through its centre in today's head frame H.</summary>
/// <param name="OriginH">The camera's centre, frame H, mm.</param>
/// <param name="DirectionH">Unit direction, frame H.</param>
/// <param name="DiameterMm">Apparent diameter, mm (for pictures and reports; not used to match).</param>
public sealed record DotObservation(Vec3 OriginH, Vec3 DirectionH, double DiameterMm);

/// <summary>A found dot matched to a record dot.</summary>
/// <param name="Observation">Index into the observations given.</param>
/// <param name="RecordIndex">Index into the record given.</param>
/// <param name="RecordId">The record dot's id.</param>
/// <param name="ObservedS">Where the observation's ray meets the skin under the registration, frame S, mm.</param>
/// <param name="RecordS">The record dot, frame S, mm.</param>
/// <param name="ResidualMm">Distance between the two, mm.</param>
public sealed record DotPair(int Observation, int RecordIndex, string RecordId, Vec3 ObservedS, Vec3 RecordS, double ResidualMm);

/// <summary>Limits and search ranges of <see cref="DotRegistration"/>.</summary>
public sealed record DotRegistrationOptions
{
    /// <summary>Fewer matched dots than this are refused.</summary>
    public int MinMatches { get; init; } = 12;

    /// <summary>A smaller share of the record dots expected in view being matched is refused (a wrong client, a covered scalp).</summary>
    public double MinMatchedFraction { get; init; } = 0.6;

    /// <summary>
    /// A larger RMS distance between matched found and record dots is refused, mm. A right registration's residual is the
    /// earlier session's placement error plus the camera's, about 0.1 mm; a fit caught between two placements shows more.
    /// </summary>
    public double MaxResidualRmsMm { get; init; } = 0.15;

    /// <summary>A larger 95th percentile of that distance is refused, mm.</summary>
    public double MaxResidualP95Mm { get; init; } = 0.25;

    /// <summary>
    /// Weight of a probe contact against a ray's pair in the fit (the probe's ~0.01 mm against the camera's ~0.05 mm:
    /// (0.05 / 0.01)² = 25).
    /// </summary>
    public double ContactWeight { get; init; } = 25;

    /// <summary>
    /// The search's second-best distinct hypothesis over its best (votes above the background): larger is ambiguous
    /// and refused. A non-periodic pattern gives well under 0.3 on the right record; a wrong record close to 1.
    /// </summary>
    public double MaxAmbiguity { get; init; } = 0.5;

    /// <summary>How far along the skin the initial T_HS may be off, mm (the search's translation range).</summary>
    public double SearchSlideMm { get; init; } = 10;

    /// <summary>How far about the skin's normal the initial T_HS may be turned, degrees (the search's rotation range).</summary>
    public double SearchTwistDeg { get; init; } = 6;

    /// <summary>Step of the rotation sweep, degrees.</summary>
    public double TwistStepDeg { get; init; } = 0.5;

    /// <summary>Translation vote bin, mm.</summary>
    public double VoteBinMm { get; init; } = 0.25;

    /// <summary>A found and a record dot further apart than this after the registration are not a pair, mm.</summary>
    public double MatchGateMm { get; init; } = 0.35;
}

/// <summary>What <see cref="DotRegistration.Register"/> found.</summary>
/// <param name="HeadFromScalp">T_HS found (the initial one when the search found nothing to refine).</param>
/// <param name="DotsFound">Observations whose ray meets the skin.</param>
/// <param name="ExpectedInView">Record dots the camera should see under <paramref name="HeadFromScalp"/>.</param>
/// <param name="Matched">Pairs whose record dot is expected in view.</param>
/// <param name="MatchedFraction"><paramref name="Matched"/> ÷ <paramref name="ExpectedInView"/>.</param>
/// <param name="ResidualRmsMm">RMS distance of the pairs, mm.</param>
/// <param name="ResidualP95Mm">95th percentile of that distance, mm.</param>
/// <param name="Ambiguity">The search's second-best distinct hypothesis over its best (0 clear, 1 a tie).</param>
/// <param name="Pairs">Every pair.</param>
/// <param name="ObservedS">For each observation, where its ray meets the skin under <paramref name="HeadFromScalp"/> (frame S), or null.</param>
/// <param name="Accepted">True when the result may be used.</param>
/// <param name="RefusalReason">Why not, when not accepted.</param>
/// <param name="Elapsed">Wall time of the registration.</param>
public sealed record DotRegistrationResult(
    RigidTransform HeadFromScalp,
    int DotsFound,
    int ExpectedInView,
    int Matched,
    double MatchedFraction,
    double ResidualRmsMm,
    double ResidualP95Mm,
    double Ambiguity,
    IReadOnlyList<DotPair> Pairs,
    IReadOnlyList<Vec3?> ObservedS,
    bool Accepted,
    string? RefusalReason,
    TimeSpan Elapsed)
{
    /// <summary>T_HS as the hypothesis search left it, before the ICP (null when the search did not run or was refused).</summary>
    public RigidTransform? SearchHeadFromScalp { get; init; }
}

/// <summary>
/// Finds today's T_HS from the dots of earlier sessions the camera sees. The record (dots in S) is matched to the
/// observations (rays in H) met with the skin model: first a hypothesis search that does not need a close start (a
/// sweep of turns about the skin's normal at the view's centre, each with a vote of every found dot against every
/// record dot near it for the slide along the skin that would pair them; a pattern of blue noise gives one clear
/// peak, a wrong record none), then an ICP of mutual nearest neighbours under a shrinking gate whose step is a robust
/// Gauss–Newton fit of the record dots to the rays (the distance of each record dot from its ray: the camera's own
/// error, which leaves no freedom along the ray for the skin model to decide), the rays met with the skin again under
/// each new T_HS. Refuses, with the reason, whatever must not be trusted.
/// </summary>
public static class DotRegistration
{
    /// <summary>Registers <paramref name="record"/> to <paramref name="observations"/>.</summary>
    /// <param name="record">Record dots, frame S (any number; those far from the view are ignored).</param>
    /// <param name="observations">Found dark spots as rays, frame H (healed dots and whatever else was dark).</param>
    /// <param name="skin">The skin model, frame S.</param>
    /// <param name="initialHeadFromScalp">T_HS to start from (e.g. probing's), within the search ranges of the truth.</param>
    /// <param name="inViewH">Whether the camera would see (and look for) a dot at this point of H with this outward normal.</param>
    /// <param name="options">Limits; defaults when null.</param>
    /// <param name="skinContactsH">
    /// Where a probe touched today's skin, frame H (null or empty: none). The fit then keeps them on the skin model: the
    /// probe measures the skin's height and tilt to a hundredth of a millimetre, the camera's rays hardly at all (they
    /// run nearly along the skin's normal), so the rays decide the board's slide along the skin and the contacts the rest.
    /// </param>
    public static DotRegistrationResult Register(IReadOnlyList<RecordedDot> record, IReadOnlyList<DotObservation> observations, TriangleMesh skin,
        RigidTransform initialHeadFromScalp, Func<Vec3, Vec3, bool> inViewH, DotRegistrationOptions? options = null, IReadOnlyList<Vec3>? skinContactsH = null)
    {
        var contacts = skinContactsH ?? [];
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(observations);
        ArgumentNullException.ThrowIfNull(skin);
        ArgumentNullException.ThrowIfNull(inViewH);
        var o = options ?? new DotRegistrationOptions();
        var clock = Stopwatch.StartNew();
        var t = initialHeadFromScalp;
        var hits = Intersect(observations, skin, t);
        var found = hits.Count(h => h is not null);
        DotRegistrationResult Refuse(string reason, double ambiguity = double.NaN) =>
            Finish(record, observations, skin, initialHeadFromScalp, inViewH, o, ambiguity, clock, reason);
        if (found < o.MinMatches) return Refuse($"too few dots found: {found} of {observations.Count} spots meet the skin (at least {o.MinMatches} needed)");

        var valid = hits.Where(h => h is not null).Select(h => h!.Value).ToArray();
        var mean = valid.Aggregate(Vec3.Zero, (a, b) => a + b) * (1.0 / valid.Length);
        if (skin.ClosestPoint(mean, 100) is not { } centreHit) return Refuse("the found dots are not near the skin model");
        var centre = centreHit.Point;
        var normal = skin.NormalAt(centreHit);
        var viewRadius = valid.Max(p => p.DistanceTo(centre));
        var candidates = Enumerable.Range(0, record.Count)
            .Where(j => record[j].PointMm.DistanceTo(centre) <= viewRadius + o.SearchSlideMm + 2 && Vec3.Dot(record[j].Normal, normal) > 0.3)
            .ToArray();
        if (candidates.Length < o.MinMatches) return Refuse($"too few record dots near the view: {candidates.Length} (at least {o.MinMatches} needed)");

        // A board sliding on a head turns about the head's centre, not about the centre of curvature of the patch in
        // view (a slide of 7 mm about the wrong one is half a millimetre off at the edge of the view): the sphere of the
        // whole top of the head, from the record's dots whose skin faces within 60° of the view's.
        var cap = record.Where(d => Vec3.Dot(d.Normal, normal) > 0.5).Select(d => d.PointMm).ToArray();
        var candidatePoints = candidates.Select(j => record[j].PointMm).ToArray();
        if (cap.Length < 50) cap = candidatePoints;
        // Twice: the first search's placement leaves the model's errors of a long slide (the rays met a skin that was
        // not where it is); met again under it, the second search's peak is sharp, and it is the one judged ambiguous.
        SearchResult? search = null;
        for (var pass = 0; pass < 2; pass++)
        {
            if (pass > 0)
            {
                valid = [.. Intersect(observations, skin, t).Where(h => h is not null).Select(h => h!.Value)];
                if (valid.Length < o.MinMatches) return Refuse($"too few dots found: {valid.Length} spots meet the skin (at least {o.MinMatches} needed)");
                mean = valid.Aggregate(Vec3.Zero, (a, b) => a + b) * (1.0 / valid.Length);
                if (skin.ClosestPoint(mean, 100) is not { } again) return Refuse("the found dots are not near the skin model");
                centre = again.Point;
                normal = skin.NormalAt(again);
            }
            search = Search(valid, candidatePoints, cap, centre, normal, viewRadius, o);
            if (pass > 0 && search.Ambiguity > o.MaxAmbiguity)
            {
                return Refuse($"ambiguous: the second-best placement of the record has {search.Ambiguity:P0} of the best's support (at most {o.MaxAmbiguity:P0}): a different client's record, or the earlier dots are not in view", search.Ambiguity);
            }
            // The hypothesis moves the found dots within S: p ↦ o + R(p − o), i.e. T_SH ↦ C·T_SH, so T_HS ↦ T_HS·C⁻¹.
            var correction = Rotations.FromMatrix(search.Rotation, search.Centre - Apply(search.Rotation, search.Centre));
            t *= Rotations.Inverse(correction);
        }
        var hypothesis = t;

        var recordPoints = candidates.Select(j => record[j].PointMm).ToArray();
        var recordGrid = new PointGrid(recordPoints, 0.6);
        // The search leaves well under half a spacing of error; the gate shrinks to the final one as the fit settles.
        double[] gates = [0.8, 0.6, 0.45, o.MatchGateMm];
        for (var round = 0; round < 12; round++)
        {
            var gate = gates[Math.Min(round, gates.Length - 1)];
            hits = Intersect(observations, skin, t);
            var pairs = MutualNearest(hits, recordPoints, recordGrid, gate);
            if (pairs.Count < 6) break;
            var moved = double.MaxValue;
            var total = 0.0;
            for (var inner = 0; inner < 3 && moved > 1e-5; inner++)
            {
                (t, moved) = FitToRays(t, pairs.Select(p => (observations[p.Observation], recordPoints[p.Record])).ToList(), viewRadius, skin, contacts, o.ContactWeight);
                total += moved;
            }
            // Settled at the final gate: the pairs would not change.
            if (round >= gates.Length && total < 1e-3) break;
        }
        return Finish(record, observations, skin, t, inViewH, o, search!.Ambiguity, clock, null) with { SearchHeadFromScalp = hypothesis };
    }

    private static DotRegistrationResult Finish(IReadOnlyList<RecordedDot> record, IReadOnlyList<DotObservation> observations, TriangleMesh skin, RigidTransform t,
        Func<Vec3, Vec3, bool> inViewH, DotRegistrationOptions o, double ambiguity, Stopwatch clock, string? refusal)
    {
        var hits = Intersect(observations, skin, t);
        var found = hits.Count(h => h is not null);
        var r = Rotations.RotationMatrix(t);
        var inView = new bool[record.Count];
        var expected = 0;
        for (var j = 0; j < record.Count; j++)
        {
            var d = record[j];
            inView[j] = inViewH(t.Apply(d.PointMm), Apply(r, d.Normal));
            if (inView[j]) expected++;
        }
        var near = Enumerable.Range(0, record.Count).Where(j => inView[j]).ToArray();
        var points = near.Select(j => record[j].PointMm).ToArray();
        var pairs = points.Length == 0 ? [] : MutualNearest(hits, points, new PointGrid(points, Math.Max(o.MatchGateMm, 0.3)), o.MatchGateMm)
            .Select(p => new DotPair(p.Observation, near[p.Record], record[near[p.Record]].Id, hits[p.Observation]!.Value, points[p.Record], hits[p.Observation]!.Value.DistanceTo(points[p.Record])))
            .ToList();
        var residuals = pairs.Select(p => p.ResidualMm).Order().ToArray();
        var rms = residuals.Length == 0 ? double.NaN : Math.Sqrt(residuals.Sum(x => x * x) / residuals.Length);
        var p95 = residuals.Length == 0 ? double.NaN : residuals[Math.Clamp((int)Math.Ceiling(0.95 * residuals.Length) - 1, 0, residuals.Length - 1)];
        var fraction = expected == 0 ? 0 : pairs.Count / (double)expected;
        refusal ??= pairs.Count < o.MinMatches ? $"too few matches: {pairs.Count} (at least {o.MinMatches} needed; {found} dots found, {expected} record dots expected in view)"
            : fraction < o.MinMatchedFraction ? $"matched fraction too low: {pairs.Count} of {expected} record dots expected in view ({fraction:P0}; at least {o.MinMatchedFraction:P0}): a different client's record, or the scalp partly covered"
            : rms > o.MaxResidualRmsMm ? $"residual too high: RMS {rms:0.000} mm (at most {o.MaxResidualRmsMm:0.000} mm)"
            : p95 > o.MaxResidualP95Mm ? $"residual too high: p95 {p95:0.000} mm (at most {o.MaxResidualP95Mm:0.000} mm)"
            : null;
        clock.Stop();
        return new DotRegistrationResult(t, found, expected, pairs.Count, fraction, rms, p95, ambiguity, pairs, hits, refusal is null, refusal, clock.Elapsed);
    }

    /// <summary>Where each observation's ray meets the skin when S sits at <paramref name="headFromScalp"/> in H, frame S.</summary>
    public static Vec3?[] Intersect(IReadOnlyList<DotObservation> observations, TriangleMesh skin, RigidTransform headFromScalp)
    {
        ArgumentNullException.ThrowIfNull(observations);
        ArgumentNullException.ThrowIfNull(skin);
        var scalpFromHead = Rotations.Inverse(headFromScalp);
        var r = Rotations.RotationMatrix(scalpFromHead);
        var hits = new Vec3?[observations.Count];
        for (var i = 0; i < hits.Length; i++)
        {
            var ob = observations[i];
            hits[i] = skin.Raycast(scalpFromHead.Apply(ob.OriginH), Apply(r, ob.DirectionH))?.Point;
        }
        return hits;
    }

    private sealed record SearchResult(double[] Rotation, Vec3 Centre, double Ambiguity);

    /// <summary>
    /// The turn of the skin about the centre of the sphere that fits <paramref name="head"/> (the top of the head) that pairs the most found
    /// dots with record dots: a sweep of turns about the view's axis (the twist of the board about the skin's normal),
    /// and for each a vote over the slide along the skin (the turn about the two axes across the view, in mm at the
    /// sphere's radius, bins of <see cref="DotRegistrationOptions.VoteBinMm"/>) of every found dot against every record
    /// dot near it; a hypothesis scores the votes of its bin and the eight around it. A board sliding on a head turns
    /// about the head's centre, so this is exact on a sphere (a translation in the view's tangent plane is off by
    /// slide × ρ² / 2R², a third of a millimetre at the edge of the view). Also: how strong the best distinct rival is.
    /// </summary>
    private static SearchResult Search(Vec3[] found, Vec3[] record, Vec3[] head, Vec3 centre, Vec3 normal, double viewRadius, DotRegistrationOptions o)
    {
        var (sphere, radius) = FitSphere(head);
        // A record too flat for a sphere (or a degenerate fit): a sphere far below, which is a plane's translation.
        if (!(radius > 20 && radius < 1000) || Vec3.Dot(centre - sphere, normal) <= 0)
        {
            radius = 1000;
            sphere = centre - (normal * radius);
        }
        var axis = (centre - sphere).Normalized();
        var e1 = Vec3.Cross(axis, Math.Abs(axis.X) < 0.9 ? new Vec3(1, 0, 0) : new Vec3(0, 1, 0)).Normalized();
        var e2 = Vec3.Cross(axis, e1);
        var half = (int)Math.Ceiling(o.SearchSlideMm / o.VoteBinMm);
        var side = (2 * half) + 1;
        var steps = (int)Math.Round(o.SearchTwistDeg / o.TwistStepDeg);
        var twists = Enumerable.Range(-steps, (2 * steps) + 1).Select(k => k * o.TwistStepDeg).ToArray();
        // Each found dot's record neighbours, once: within the slide plus what the largest turn moves it.
        var maxReach = o.SearchSlideMm + (viewRadius * o.SearchTwistDeg * Math.PI / 180) + o.VoteBinMm;
        var grid = new PointGrid(record, maxReach / 2);
        var neighbours = new int[found.Length][];
        var list = new List<int>();
        var unitRecord = record.Select(r => (r - sphere).Normalized()).ToArray();
        for (var i = 0; i < found.Length; i++)
        {
            var reach = o.SearchSlideMm + (found[i].DistanceTo(centre) * o.SearchTwistDeg * Math.PI / 180) + o.VoteBinMm;
            grid.Within(found[i], reach, list);
            neighbours[i] = list.Where(j => record[j].DistanceTo(found[i]) <= reach).ToArray();
        }
        (double A, double B) Vote(Vec3 unitFound, int j)
        {
            // The small turn about the sphere's centre taking the found dot onto the record dot, in mm at the radius.
            var w = Vec3.Cross(unitFound, unitRecord[j]) * radius;
            return (Vec3.Dot(w, e1), Vec3.Dot(w, e2));
        }
        Vec3[] Turned(double[] twist) => found.Select(p => Apply(twist, (p - sphere).Normalized())).ToArray();

        var scores = new int[twists.Length][];
        var backgrounds = new double[twists.Length];
        var slide2 = o.SearchSlideMm * o.SearchSlideMm;
        Parallel.For(0, twists.Length, k =>
        {
            var turned = Turned(Rotations.MatrixFromVector(axis * (twists[k] * Math.PI / 180)));
            var votes = new int[side * side];
            var total = 0;
            for (var i = 0; i < found.Length; i++)
            {
                foreach (var j in neighbours[i])
                {
                    var (a, b) = Vote(turned[i], j);
                    if ((a * a) + (b * b) > slide2) continue;
                    var ia = (int)Math.Round(a / o.VoteBinMm) + half;
                    var ib = (int)Math.Round(b / o.VoteBinMm) + half;
                    votes[(ib * side) + ia]++;
                    total++;
                }
            }
            var score = new int[side * side];
            for (var y = 1; y < side - 1; y++)
            {
                for (var x = 1; x < side - 1; x++)
                {
                    var s = 0;
                    for (var dy = -1; dy <= 1; dy++)
                    {
                        for (var dx = -1; dx <= 1; dx++) s += votes[((y + dy) * side) + x + dx];
                    }
                    score[(y * side) + x] = s;
                }
            }
            scores[k] = score;
            // Votes of unrelated pairs fall evenly over the slide's disc: the level a true peak stands above.
            backgrounds[k] = total * 9.0 / (Math.PI * slide2 / (o.VoteBinMm * o.VoteBinMm));
        });
        int bestK = 0, bestBin = 0;
        var best = double.MinValue;
        for (var k = 0; k < twists.Length; k++)
        {
            for (var b = 0; b < scores[k].Length; b++)
            {
                var s = scores[k][b] - backgrounds[k];
                if (s > best)
                {
                    best = s;
                    bestK = k;
                    bestBin = b;
                }
            }
        }
        // The best rival: a hypothesis that moves the view's dots by more than a millimetre against the best.
        int bx = bestBin % side, by = bestBin / side;
        var second = 0.0;
        for (var k = 0; k < twists.Length; k++)
        {
            var turnMm = Math.Abs(twists[k] - twists[bestK]) * Math.PI / 180 * viewRadius * 0.5;
            for (var b = 0; b < scores[k].Length; b++)
            {
                var dx = ((b % side) - bx) * o.VoteBinMm;
                var dy = ((b / side) - by) * o.VoteBinMm;
                if (Math.Sqrt((dx * dx) + (dy * dy)) + turnMm <= 1.0) continue;
                second = Math.Max(second, scores[k][b] - backgrounds[k]);
            }
        }
        // The slide as the mean vote over the best bin and its neighbours (finer than a bin).
        var twist = Rotations.MatrixFromVector(axis * (twists[bestK] * Math.PI / 180));
        var bestTurned = Turned(twist);
        double sw = 0, sa = 0, sb = 0;
        for (var i = 0; i < found.Length; i++)
        {
            foreach (var j in neighbours[i])
            {
                var (a, b) = Vote(bestTurned[i], j);
                if (Math.Abs((a / o.VoteBinMm) - (bx - half)) > 1.5 || Math.Abs((b / o.VoteBinMm) - (by - half)) > 1.5) continue;
                sw++;
                sa += a;
                sb += b;
            }
        }
        var slide = sw > 0 ? ((e1 * (sa / sw)) + (e2 * (sb / sw))) * (1 / radius) : Vec3.Zero;
        var rotation = Rotations.Multiply(Rotations.MatrixFromVector(slide), twist);
        var ambiguity = best <= 0 ? 1 : Math.Clamp(second / best, 0, 1);
        return new SearchResult(rotation, sphere, ambiguity);
    }

    /// <summary>The sphere through <paramref name="points"/> in the least-squares sense (algebraic fit: |x|² = 2 c·x + k).</summary>
    private static (Vec3 Centre, double RadiusMm) FitSphere(Vec3[] points)
    {
        var a = Matrix<double>.Build.Dense(points.Length, 4);
        var b = Vector<double>.Build.Dense(points.Length);
        for (var i = 0; i < points.Length; i++)
        {
            var p = points[i];
            a[i, 0] = 2 * p.X;
            a[i, 1] = 2 * p.Y;
            a[i, 2] = 2 * p.Z;
            a[i, 3] = 1;
            b[i] = Vec3.Dot(p, p);
        }
        var x = a.QR().Solve(b);
        var c = new Vec3(x[0], x[1], x[2]);
        var r2 = x[3] + Vec3.Dot(c, c);
        return (c, r2 > 0 ? Math.Sqrt(r2) : double.NaN);
    }

    private readonly record struct Pair(int Observation, int Record);

    /// <summary>Found and record dots each other's nearest within <paramref name="gateMm"/>.</summary>
    private static List<Pair> MutualNearest(Vec3?[] hits, Vec3[] record, PointGrid recordGrid, double gateMm)
    {
        var nearestRecord = new int[hits.Length];
        var list = new List<int>();
        var bestHitOfRecord = new Dictionary<int, (int Hit, double D)>();
        for (var i = 0; i < hits.Length; i++)
        {
            nearestRecord[i] = -1;
            if (hits[i] is not { } h) continue;
            recordGrid.Within(h, gateMm, list);
            var bestD = gateMm;
            foreach (var j in list)
            {
                var d = record[j].DistanceTo(h);
                if (d <= bestD)
                {
                    bestD = d;
                    nearestRecord[i] = j;
                }
            }
        }
        // Each record dot's nearest found dot, among those within the gate of it (the same set seen from the other side).
        for (var i = 0; i < hits.Length; i++)
        {
            if (hits[i] is not { } h) continue;
            recordGrid.Within(h, gateMm, list);
            foreach (var j in list)
            {
                var d = record[j].DistanceTo(h);
                if (d > gateMm) continue;
                if (!bestHitOfRecord.TryGetValue(j, out var b) || d < b.D) bestHitOfRecord[j] = (i, d);
            }
        }
        var pairs = new List<Pair>();
        foreach (var (j, (i, _)) in bestHitOfRecord)
        {
            if (nearestRecord[i] == j) pairs.Add(new Pair(i, j));
        }
        return pairs;
    }

    /// <summary>
    /// One robust Gauss–Newton step of T_HS that brings each record dot (in H) onto its ray: residual (I − d dᵀ)(T·x − o),
    /// Huber weights (0.1 mm), the step applied on the left in H. Returns the new T_HS and how far it moved the view's
    /// dots (the translation plus the turn times the view's radius), mm.
    /// </summary>
    private static (RigidTransform T, double MovedMm) FitToRays(RigidTransform t, List<(DotObservation Ray, Vec3 RecordS)> pairs, double viewRadiusMm,
        TriangleMesh skin, IReadOnlyList<Vec3> contactsH, double contactWeight)
    {
        const double HuberMm = 0.1;
        var jtj = Matrix<double>.Build.Dense(6, 6);
        var jte = Vector<double>.Build.Dense(6);
        var row = new double[6];
        // One residual's row (d/dω, d/dv) into the normal equations, weighted.
        void Accumulate(Vec3 dOmega, Vec3 dShift, double residual, double weight)
        {
            row[0] = dOmega.X;
            row[1] = dOmega.Y;
            row[2] = dOmega.Z;
            row[3] = dShift.X;
            row[4] = dShift.Y;
            row[5] = dShift.Z;
            for (var a = 0; a < 6; a++)
            {
                jte[a] += weight * row[a] * residual;
                for (var b = 0; b < 6; b++) jtj[a, b] += weight * row[a] * row[b];
            }
        }

        if (contactsH.Count > 0)
        {
            // Each contact on the skin model: its signed distance along the skin's normal, e = n·(y − c) with y = T·x the
            // model's point nearest it; de/dω = y × n and de/dv = n. Weighted as the probe is precise (~0.01 mm).
            var scalpFromHead = Rotations.Inverse(t);
            var r = Rotations.RotationMatrix(t);
            foreach (var c in contactsH)
            {
                if (skin.ClosestPoint(scalpFromHead.Apply(c), 5) is not { } hit) continue;
                var y = t.Apply(hit.Point);
                var n = Apply(r, skin.NormalAt(hit)).Normalized();
                Accumulate(Vec3.Cross(y, n), n, Vec3.Dot(n, y - c), contactWeight);
            }
        }
        foreach (var (ray, x) in pairs)
        {
            var y = t.Apply(x);
            var d = ray.DirectionH;
            var v = y - ray.OriginH;
            var e = v - (d * Vec3.Dot(v, d));
            var w = e.Length <= HuberMm ? 1 : HuberMm / e.Length;
            // de/dω = P·(−[y]×) and de/dv = P, with P = I − d dᵀ; one row per component of e.
            for (var c = 0; c < 3; c++)
            {
                var axis = c == 0 ? new Vec3(1, 0, 0) : c == 1 ? new Vec3(0, 1, 0) : new Vec3(0, 0, 1);
                var pRow = axis - (d * Vec3.Dot(axis, d)); // row c of P (P is symmetric)
                // row of P·(−[y]×): for ω, −pRow·(y × ·)… the derivative of pRow·(ω × y) is pRow·(ω × y) = ω·(y × pRow).
                Accumulate(Vec3.Cross(y, pRow), pRow, c == 0 ? e.X : c == 1 ? e.Y : e.Z, w);
            }
        }
        // A whisker of damping: the step stays finite if the pairs were ever too few to fix every direction.
        for (var a = 0; a < 6; a++) jtj[a, a] += 1e-9 * (1 + jtj[a, a]);
        var step = jtj.Solve(-jte);
        var omega = new Vec3(step[0], step[1], step[2]);
        var shift = new Vec3(step[3], step[4], step[5]);
        var update = Rotations.FromRotationVector(omega, shift);
        return (update * t, shift.Length + (omega.Length * viewRadiusMm));
    }

    private static Vec3 Apply(double[] r, Vec3 p) => new(
        (r[0] * p.X) + (r[1] * p.Y) + (r[2] * p.Z),
        (r[3] * p.X) + (r[4] * p.Y) + (r[5] * p.Z),
        (r[6] * p.X) + (r[7] * p.Y) + (r[8] * p.Z));
}
