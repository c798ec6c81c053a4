using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;

namespace SmpRobot.Treatment.Sampling;

/// <summary>One sampled dot on the mesh.</summary>
/// <param name="PointMm">On the surface, frame S.</param>
/// <param name="Face">Its triangle; <paramref name="U"/>, <paramref name="V"/> its barycentric weights (for the smooth normal).</param>
/// <param name="Region">Index into the design's regions.</param>
/// <param name="Layer">Body, hairline band or scar.</param>
/// <param name="BandPosition">Across the hairline band (0 front, 1 back); NaN outside it.</param>
/// <param name="Session">The session that places it, 1-based.</param>
/// <param name="DwellScale">Its own dwell as a share of the region's (within ±<see cref="DotSettings.DwellJitter"/>).</param>
/// <param name="Draw">A uniform number in [0, 1) of its own, for choices made per dot (seeded).</param>
public sealed record SampledDot(Vec3 PointMm, int Face, double U, double V, int Region, DotLayer Layer, double BandPosition, int Session, double DwellScale, double Draw);

/// <summary>What sampling produced, and how it went.</summary>
/// <param name="Dots">Every dot of every session.</param>
/// <param name="Candidates">How many candidates the elimination started from.</param>
/// <param name="TargetPerRegion">The final count each region was asked for (its density integrated over its area).</param>
/// <param name="SpacingViolations">Pairs of dots closer than their regions' minimum spacing (0 when the pattern is sound).</param>
public sealed record SamplingResult(IReadOnlyList<SampledDot> Dots, int Candidates, IReadOnlyList<int> TargetPerRegion, int SpacingViolations);

/// <summary>
/// Progressive blue-noise sampling on the head mesh with weighted sample elimination (Yuksel 2015,
/// "Sample Elimination for Generating Poisson Disk Sample Sets"), adapted to a density that varies over
/// the scalp and to sessions:
/// <list type="number">
/// <item>Candidates: about <see cref="Oversampling"/> times the target density, uniformly over each triangle
/// and thinned to the local density, so the candidate density follows the design's.</item>
/// <item>Elimination: each candidate's weight sums its neighbours' (1 − d / 2r)^8 within 2r,
/// r being the local Poisson-disk radius √(1 / (2√3 · density)) and d limited from below as in the paper (so
/// a close pair does not dominate); pairs closer than the minimum spacing weigh prohibitively, so they go
/// first. The heaviest candidate goes, its neighbours' weights drop, until every region's body and hairline
/// band have exactly their quotas (the density integrated over their areas): densities are met per region,
/// not merely on average.</item>
/// <item>Sessions, progressively: from the final set, elimination again to the density of all sessions but
/// the last (radius grown by 1/√share); what it removes is the last session. Then again for the one before,
/// and so on: what remains is session 1. Every session's cumulative set is itself a blue-noise set at its
/// density (pairs closer than a hard core of <see cref="HardCoreShares"/> of its hexagonal spacing go first,
/// and the few a pass leaves are repaired by moving one dot of the pair to a freer place nearby), the first
/// session is spread over the whole area, and each later session fills between the dots before it.</item>
/// </list>
/// </summary>
/// <remarks>
/// Written by hand: the registry here serves no Poisson-disk or sample-elimination package for .NET (the
/// paper's own code is C++); about 200 lines, deterministic for a seed.
/// </remarks>
public sealed class BlueNoiseSampler(DensityField field)
{
    /// <summary>Candidates per final dot (the paper uses 3-5; more costs time, not quality).</summary>
    public const double Oversampling = 5;

    /// <summary>The weight's exponent α (the paper's 8).</summary>
    private const double Alpha = 8;

    /// <summary>Weight limiting: r_min = r · β · (1 − (N/M)^γ), the paper's β = 0.65, γ = 1.5.</summary>
    private const double Beta = 0.65, Gamma = 1.5;

    /// <summary>Extra weight of a pair closer than its minimum spacing: such pairs are broken up before anything else.</summary>
    private const double HardCoreWeight = 1000;

    private sealed class Candidate
    {
        public required Vec3 P;
        public required int Face;
        public required double U, V;
        public required int Region;
        public required DotLayer Layer;
        public required double BandPosition;
        public required double Density;
        public required double MinSpacing;
        public required double DwellScale;
        public required double Draw;

        /// <summary>What its quota counts: the region's body (or a scar), or the region's hairline band (see <see cref="DensityField.Group"/>).</summary>
        public required int Group;
    }

    /// <summary>Samples every session's dots; <paramref name="shares"/> is each session's share of the final density.</summary>
    public SamplingResult Sample(IReadOnlyList<double> shares, int seed)
    {
        ArgumentNullException.ThrowIfNull(shares);
        var design = field.Design;
        var expected = field.ExpectedDotsPerGroup();
        var quota = expected.Select(e => (int)Math.Round(e)).ToArray();
        var candidates = Candidates(seed);
        var points = candidates.Select(c => c.P).ToArray();

        // Down to the final density from every candidate; then, session by session from the last, down to the
        // density of the sessions before it: what each pass removes is that session's own dots. Each pass ends
        // by repairing the closest pairs it left.
        var session = new int[candidates.Count];
        var alive = Enumerable.Repeat(true, candidates.Count).ToArray();
        var none = new bool[candidates.Count];
        var cumulative = new double[shares.Count + 1];
        for (var k = 1; k <= shares.Count; k++) cumulative[k] = k == shares.Count ? 1 : cumulative[k - 1] + shares[k - 1];
        for (var k = shares.Count; k >= 1; k--)
        {
            var keep = quota.Select(q => (int)Math.Round(q * cumulative[k])).ToArray();
            var before = (bool[])alive.Clone();
            // The final set has every candidate to choose from. The earlier sessions are subsets: the highest hard
            // core that leaves no close pair is taken (a 30 % session within a 65 % one sometimes has no room at 0.665).
            var ladder = k == shares.Count ? [FinalHardCoreShare] : HardCoreShares;
            var pairs = NeighbourPairs(candidates, points, before, keep.Sum(), cumulative[k]);
            foreach (var share in ladder)
            {
                Array.Copy(before, alive, before.Length);
                var hardCore = candidates.Select(c => Math.Max(c.MinSpacing, share * DotSettings.HexSpacingMm(c.Density * cumulative[k]))).ToArray();
                Eliminate(candidates, pairs, alive, none, keep, hardCore);
                if (Repair(candidates, points, before, alive, none, hardCore) == 0) break;
            }
            for (var i = 0; i < candidates.Count; i++)
            {
                if (before[i] && !alive[i] && k < shares.Count) session[i] = k + 1;
            }
        }
        for (var i = 0; i < candidates.Count; i++)
        {
            if (alive[i]) session[i] = 1;
        }
        var dots = new List<SampledDot>();
        for (var i = 0; i < candidates.Count; i++)
        {
            if (session[i] == 0) continue;
            var c = candidates[i];
            dots.Add(new SampledDot(c.P, c.Face, c.U, c.V, c.Region, c.Layer, c.BandPosition, session[i], c.DwellScale, c.Draw));
        }
        var violations = CountSpacingViolations(dots, design);
        var perRegion = new int[design.Regions.Count];
        for (var g = 0; g < quota.Length; g++) perRegion[g / 2] += quota[g];
        return new SamplingResult(dots, candidates.Count, perRegion, violations);
    }

    /// <summary>Candidates at about <see cref="Oversampling"/> times the target density, uniformly per triangle, thinned to the local density.</summary>
    private List<Candidate> Candidates(int seed)
    {
#pragma warning disable CA5394 // Seeded, reproducible sampling for a design, not security.
        var rng = new Random(seed);
        var design = field.Design;
        var mesh = design.Mesh;
        var list = new List<Candidate>();
        for (var f = 0; f < mesh.FaceCount; f++)
        {
            // An upper bound of the density on the face: a plain triangle's zone (and any scar), else the
            // densest region found at its corners, edge midpoints and centre with the scatter pushed forwards.
            var bound = 0.0;
            if (field.FaceZones[f] >= 0) bound = design.Regions[field.FaceZones[f]].DensityPerMm2;
            if (field.FaceZones[f] < 0 || design.Scars.Count > 0)
            {
                foreach (var (u, v) in Probes)
                {
                    var s = field.AtFacePoint(f, mesh.PointAt(f, u, v), 3);
                    if (s.Region >= 0) bound = Math.Max(bound, design.Regions[s.Region].DensityPerMm2);
                }
                if (design.Scars.Count > 0) bound = Math.Max(bound, design.Scars.Max(s => s.Settings.DensityPerMm2));
            }
            if (bound <= 0) continue;
            var wanted = Oversampling * bound * mesh.FaceArea(f);
            var count = (int)Math.Floor(wanted) + (rng.NextDouble() < wanted - Math.Floor(wanted) ? 1 : 0);
            for (var n = 0; n < count; n++)
            {
                var (u, v) = (rng.NextDouble(), rng.NextDouble());
                if (u + v > 1) (u, v) = (1 - u, 1 - v);
                var p = mesh.PointAt(f, u, v);
                var scatter = Gaussian(rng);
                var sample = field.AtFacePoint(f, p, scatter);
                var dwell = 1 + (DotSettings.DwellJitter * ((2 * rng.NextDouble()) - 1));
                var draw = rng.NextDouble();
                if (sample.Region < 0 || rng.NextDouble() * bound >= sample.DensityPerMm2) continue;
                list.Add(new Candidate
                {
                    P = p,
                    Face = f,
                    U = u,
                    V = v,
                    Region = sample.Region,
                    Layer = sample.Layer,
                    BandPosition = sample.BandPosition,
                    Density = sample.DensityPerMm2,
                    MinSpacing = design.Regions[sample.Region].MinSpacingMm,
                    DwellScale = dwell,
                    Draw = draw,
                    Group = DensityField.Group(sample),
                });
            }
        }
        return list;

        static double Gaussian(Random rng)
        {
            // Box-Muller.
            var u1 = 1 - rng.NextDouble();
            var u2 = rng.NextDouble();
            return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
#pragma warning restore CA5394
    }

    private static readonly (double U, double V)[] Probes = [(0, 0), (1, 0), (0, 1), (1.0 / 3, 1.0 / 3), (0.5, 0), (0, 0.5), (0.5, 0.5)];

    /// <summary>
    /// The hard cores tried for an earlier session's cumulative set, highest first: a pair closer than this share of
    /// the hexagonal spacing of the density being thinned to weighs prohibitively, and one that is left is repaired.
    /// The first share that leaves no close pair is kept, so every cumulative set's closest pair is at least that far
    /// apart and its ρ at least that (the goal is 0.65). A 30 % session is a subset of the 65 % one after it and
    /// sometimes has no room at the highest share: elimination then stops at the quotas with close pairs left
    /// (measured on the Norwood presets: ρ down to 0.64 at a fixed 0.66).
    /// </summary>
    public static readonly IReadOnlyList<double> HardCoreShares = [0.665, 0.66, 0.655, 0.652];

    /// <summary>The hard core of the final set, which has every candidate to choose from (see <see cref="HardCoreShares"/>).</summary>
    public const double FinalHardCoreShare = 0.67;

    /// <summary>Neighbour pairs of a pass, both ways in flat arrays (CSR): the other end, the distance and the weight without the hard core.</summary>
    private sealed record Pairs(int[] Start, int[] Other, double[] Distance, double[] Weight);

    /// <summary>
    /// The neighbour pairs among the alive candidates: within 2r (r the mean of the two Poisson-disk radii of the
    /// density times <paramref name="densityShare"/>), weighted (1 − d̂ / 2r)^8 with d̂ limited from below as in the paper.
    /// </summary>
    private static Pairs NeighbourPairs(List<Candidate> candidates, Vec3[] points, bool[] alive, int keepTotal, double densityShare)
    {
        var n = candidates.Count;
        var radius = new double[n];
        for (var i = 0; i < n; i++) radius[i] = Math.Sqrt(1 / (2 * Math.Sqrt(3) * candidates[i].Density * densityShare));
        var inPlay = alive.Count(a => a);
        var limitShare = Beta * (1 - Math.Pow(Math.Min(1, (double)keepTotal / Math.Max(1, inPlay)), Gamma));
        // Cells sized for the typical radius. A pair lies within r_i + r_j ≤ 2·max(r_i, r_j): each pair is found from
        // its end with the larger radius, which searches 2·r around itself (the few wide radii of the sparse front of
        // the hairline band reach further; the dense rest looks at the 27 cells around it).
        var typical = radius.Order().ElementAt(n / 2);
        var grid = new PointGrid(points, 2 * typical);
        var pairI = new List<int>(n * 8);
        var pairJ = new List<int>(n * 8);
        var pairD = new List<double>(n * 8);
        var pairW = new List<double>(n * 8);
        var found = new List<int>();
        for (var i = 0; i < n; i++)
        {
            if (!alive[i]) continue;
            var p = points[i];
            grid.Within(p, 2 * radius[i], found);
            foreach (var j in found)
            {
                if (j == i || !alive[j] || radius[j] > radius[i] || (radius[j] == radius[i] && j < i)) continue;
                var rij = (radius[i] + radius[j]) / 2;
                var d = p.DistanceTo(points[j]);
                if (d >= 2 * rij) continue;
                var x = 1 - (Math.Max(d, rij * limitShare) / (2 * rij));
                var x2 = x * x;
                var x4 = x2 * x2;
                pairI.Add(i);
                pairJ.Add(j);
                pairD.Add(d);
                pairW.Add(x4 * x4); // (1 - d / 2r)^8
            }
        }
        var start = new int[n + 1];
        foreach (var i in pairI) start[i + 1]++;
        foreach (var j in pairJ) start[j + 1]++;
        for (var i = 0; i < n; i++) start[i + 1] += start[i];
        var fill = (int[])start.Clone();
        var other = new int[start[n]];
        var distance = new double[start[n]];
        var weight = new double[start[n]];
        for (var e = 0; e < pairI.Count; e++)
        {
            var (i, j) = (pairI[e], pairJ[e]);
            (other[fill[i]], distance[fill[i]], weight[fill[i]]) = (j, pairD[e], pairW[e]);
            fill[i]++;
            (other[fill[j]], distance[fill[j]], weight[fill[j]]) = (i, pairD[e], pairW[e]);
            fill[j]++;
        }
        return new Pairs(start, other, distance, weight);
    }

    /// <summary>
    /// One elimination pass: among the alive candidates, removes the heaviest that is not
    /// <paramref name="frozen"/> until each quota group keeps <paramref name="keep"/>[group] (frozen ones count);
    /// pairs closer than the larger of their <paramref name="hardCore"/> distances weigh prohibitively.
    /// </summary>
    private static void Eliminate(List<Candidate> candidates, Pairs pairs, bool[] alive, bool[] frozen, int[] keep, double[] hardCore)
    {
        var n = candidates.Count;
        var (start, other) = (pairs.Start, pairs.Other);
        var pairWeight = new double[other.Length];
        var weight = new double[n];
        for (var i = 0; i < n; i++)
        {
            if (!alive[i]) continue;
            for (var e = start[i]; e < start[i + 1]; e++)
            {
                var j = other[e];
                if (!alive[j]) continue;
                var w = pairs.Weight[e] + (pairs.Distance[e] < Math.Max(hardCore[i], hardCore[j]) ? HardCoreWeight : 0);
                pairWeight[e] = w;
                weight[i] += w;
            }
        }
        var count = new int[keep.Length];
        for (var i = 0; i < n; i++)
        {
            if (alive[i]) count[candidates[i].Group]++;
        }
        var heap = new PriorityQueue<int, double>(n);
        for (var i = 0; i < n; i++)
        {
            if (alive[i] && !frozen[i]) heap.Enqueue(i, -weight[i]);
        }
        while (heap.TryDequeue(out var i, out var priority))
        {
            if (!alive[i] || -priority != weight[i]) continue; // removed, or an old entry of a weight that has dropped
            var group = candidates[i].Group;
            if (count[group] <= keep[group]) continue; // the group has its quota: this one stays
            alive[i] = false;
            count[group]--;
            for (var e = start[i]; e < start[i + 1]; e++)
            {
                var j = other[e];
                if (!alive[j]) continue;
                weight[j] -= pairWeight[e];
                if (!frozen[j]) heap.Enqueue(j, -weight[j]);
            }
        }
    }

    /// <summary>
    /// Opens up the pairs closer than their hard-core distance that elimination left (it stops at the quotas): one
    /// dot of such a pair moves to the point of <paramref name="pool"/> (what the pass started from) that elimination
    /// removed, of the same quota group and nearby, lying clearest of every other dot — when that is clearer than the
    /// pair was. No pair ever closes, so the closest pair only opens; rounds repeat while dots move (at most 8).
    /// Counts, quotas and the nesting of the sessions stay as they are. Returns the pairs left.
    /// </summary>
    private static int Repair(List<Candidate> candidates, Vec3[] points, bool[] pool, bool[] alive, bool[] frozen, double[] hardCore)
    {
        var ids = Enumerable.Range(0, candidates.Count).Where(i => pool[i]).ToArray();
        if (ids.Length == 0) return 0;
        var cell = ids.Select(i => hardCore[i]).Order().ElementAt(ids.Length / 2);
        var grid = new PointGrid(ids.Select(i => points[i]).ToArray(), cell);
        var found = new List<int>();
        var options = new List<int>();
        var maxHardCore = ids.Max(i => hardCore[i]);

        // The closest alive dot to p (other than except) as a share of the pair's hard-core distance; < 1 is a conflict.
        (double Share, int Other) Clearance(int c, int except)
        {
            grid.Within(points[c], hardCore[c] + maxHardCore, found);
            var best = (Share: double.PositiveInfinity, Other: -1);
            foreach (var b in found)
            {
                var j = ids[b];
                if (j == c || j == except || !alive[j]) continue;
                var share = points[c].DistanceTo(points[j]) / Math.Max(hardCore[c], hardCore[j]);
                if (share < best.Share) best = (share, j);
            }
            return best;
        }

        // Moves i to the unused candidate of its group nearby that lies clearest of every other dot, when that is
        // clearer than i is now (by a margin): the closest pair around i then opens up, and no pair elsewhere closes.
        bool Move(int i, double current)
        {
            grid.Within(points[i], 2 * hardCore[i], options);
            var best = -1;
            var bestShare = current + 0.01;
            foreach (var b in options.ToArray())
            {
                var c = ids[b];
                if (alive[c] || candidates[c].Group != candidates[i].Group) continue;
                var (share, _) = Clearance(c, i);
                if (share > bestShare)
                {
                    best = c;
                    bestShare = share;
                }
            }
            if (best < 0) return false;
            alive[i] = false;
            alive[best] = true;
            return true;
        }

        // The dots of close pairs, found once: a move never closes a pair, so no new ones appear.
        var close = ids.Where(i => alive[i] && !frozen[i] && Clearance(i, -1).Share < 1).ToList();
        for (var round = 0; round < 8 && close.Count > 0; round++)
        {
            var moved = 0;
            var still = new List<int>();
            foreach (var i in close)
            {
                if (!alive[i]) continue;
                var (share, j) = Clearance(i, -1);
                if (share >= 1) continue;
                if (Move(i, share))
                {
                    moved++;
                    continue;
                }
                if (j >= 0 && !frozen[j] && Move(j, share)) moved++;
                if (Clearance(i, -1).Share < 1) still.Add(i);
            }
            close = still;
            if (moved == 0) break;
        }
        return close.Count(i => alive[i] && Clearance(i, -1).Share < 1);
    }

    /// <summary>Pairs of dots closer than the larger of their regions' minimum spacings.</summary>
    private static int CountSpacingViolations(List<SampledDot> dots, ResolvedDesign design)
    {
        if (dots.Count == 0) return 0;
        var largest = design.Regions.Max(r => r.MinSpacingMm);
        var grid = new PointGrid(dots.Select(d => d.PointMm).ToArray(), largest);
        var violations = 0;
        var found = new List<int>();
        for (var a = 0; a < dots.Count; a++)
        {
            grid.Near(dots[a].PointMm, found);
            foreach (var b in found)
            {
                if (b <= a) continue;
                var spacing = Math.Max(design.Regions[dots[a].Region].MinSpacingMm, design.Regions[dots[b].Region].MinSpacingMm);
                if (dots[a].PointMm.DistanceTo(dots[b].PointMm) < spacing) violations++;
            }
        }
        return violations;
    }
}
