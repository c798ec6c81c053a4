using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Metrics;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Sampling;
using SmpRobot.Treatment.Surface;
using Position = SmpRobot.Contracts.V1.Position;

namespace SmpRobot.Tests.Treatment;

public sealed class DesignTests(DesignFixture fixture) : IClassFixture<DesignFixture>
{
    [Fact]
    public void A_Norwood_IV_design_meets_every_goal_of_natural_and_each_session_plan_passes_the_machine_checks()
    {
        var goals = fixture.Metrics.Goals;
        Assert.True(goals.AllMet, System.Text.Json.JsonSerializer.Serialize(goals));
        Assert.InRange(goals.RhoMin, DesignGoals.RhoLow, DesignGoals.RhoHigh);
        Assert.InRange(goals.RhoMax, DesignGoals.RhoLow, DesignGoals.RhoHigh);
        Assert.True(goals.ClarkEvansMin >= DesignGoals.ClarkEvansLow);
        Assert.True(goals.DensityErrorMaxPct <= DesignGoals.DensityTolerancePct);

        // Every dot is in a plan; every plan passes; every dot carries what the plan format now says of it.
        Assert.Empty(fixture.Plans.Unreachable);
        Assert.Equal(fixture.Dots.Dots.Count, fixture.Plans.Sessions.Sum(s => s.Plan.Dots.Count));
        foreach (var session in fixture.Plans.Sessions)
        {
            Assert.True(session.Check.IsValid, string.Join("; ", session.Check.Violations.Select(v => v.Rule + " " + v.Message)));
            Assert.Equal((uint)session.Session, session.Plan.Source.Session);
            Assert.Equal(fixture.Resolved.SourceSha256, session.Plan.Source.DesignSha256);
            Assert.All(session.Plan.Dots, d =>
            {
                Assert.Equal((uint)session.Session, d.Session);
                Assert.InRange(new Vec3(d.NormalX, d.NormalY, d.NormalZ).Length, 0.999, 1.001);
                Assert.Contains(session.Plan.Patches, p => p.Number == d.Patch);
                Assert.Matches("^(1RL|3RL)-0\\.[0-9]{2}$", d.Needle);
            });
        }
        // The first session is the sparsest and the lightest.
        var perSession = fixture.Metrics.DotsPerSession;
        Assert.True(perSession[0] < perSession[1] && perSession[0] < perSession[2]);
        var firstPigments = fixture.Plans.Sessions[0].Plan.Dots.Select(d => d.PigmentId).Distinct().ToList();
        Assert.Equal(["charcoal-3"], firstPigments);
    }

    [Fact]
    public void Each_later_session_fills_between_the_earlier_dots_never_closer_than_the_zones_minimum_spacing()
    {
        var dots = fixture.Dots.Dots;
        for (var k = 2; k <= fixture.Resolved.SessionCount; k++)
        {
            var earlier = dots.Where(d => d.Session < k).Select(d => d.PointMm).ToList();
            var mine = dots.Where(d => d.Session == k).ToList();
            var nearest = PatternMetrics.NearestDistances(mine.Select(d => d.PointMm).ToList(), earlier);
            for (var i = 0; i < mine.Count; i++)
            {
                Assert.True(nearest[i] >= mine[i].Region.MinSpacingMm, $"{mine[i].Id} is {nearest[i]:0.000} mm from an earlier dot; its zone's minimum is {mine[i].Region.MinSpacingMm:0.000} mm");
            }
        }
        // Filling between: the scalp after two sessions is denser and still even (not clumped onto session 1).
        var frontal = fixture.Metrics.Regions.Single(r => r.Name == "frontal");
        Assert.True(frontal.Sessions[1].Cumulative.MeanNearestMm < frontal.Sessions[0].Cumulative.MeanNearestMm);
        Assert.True(frontal.Sessions[1].Cumulative.Rho >= DesignGoals.RhoLow);
    }

    [Fact]
    public void The_hairline_band_rises_from_sparse_single_dots_to_the_zone_density_and_its_halves_are_not_mirror_images()
    {
        var h = fixture.Metrics.Hairline!;
        Assert.True(h.Rising);
        Assert.True(h.Bins[0].DensityPerCm2 < 0.4 * h.Bins[^1].DensityPerCm2);
        Assert.True(h.DotsAhead > 0, "the scatter leaves a few single dots ahead of the line");
        Assert.True(h.MirrorMatchFraction < DesignGoals.MirrorMatchHigh);
        Assert.True(h.LineMirrorDifferenceMm > 0.3, $"halves {h.LineMirrorDifferenceMm:0.00} mm apart");
        // Finer dots at the front of the band: the hairline's 1RL needle there.
        var front = fixture.Dots.Dots.Where(d => d.Layer == DotLayer.Hairline && d.BandPosition < 0.3).ToList();
        Assert.NotEmpty(front);
        Assert.All(front, d => Assert.Equal("1RL-0.25", d.Needle.Label));
    }

    [Fact]
    public void The_same_design_gives_the_same_dots()
    {
        var again = DesignPlanner.Generate(fixture.Resolve(fixture.Design).Design!);
        Assert.Equal(fixture.Dots.Dots.Count, again.Dots.Count);
        Assert.All(fixture.Dots.Dots.Zip(again.Dots), p =>
        {
            Assert.Equal(p.First.Id, p.Second.Id);
            Assert.Equal(p.First.PointMm, p.Second.PointMm);
            Assert.Equal(p.First.DwellMs, p.Second.DwellMs);
        });
    }

    [Fact]
    public void No_dot_lands_in_an_exclusion_or_its_margin_and_a_scar_takes_its_own_settings_with_a_lighter_first_pass()
    {
        var design = fixture.Design.Clone();
        var map = fixture.Resolved.Map;
        // A mole in the middle of the frontal zone, 6 mm across, kept 2 mm clear; a strip scar across the crown.
        var moleCentre = fixture.Resolved.Zones[0].Boundary.MapOutline!.InteriorPoint.Coordinate;
        var mole = new SurfaceCurve();
        for (var k = 0; k < 24; k++)
        {
            var a = k * Math.PI / 12;
            mole.Points.Add(Pos(map.ToSurface(new MapPoint(moleCentre.X + (3 * Math.Cos(a)), moleCentre.Y + (3 * Math.Sin(a))))!.Value.Point));
        }
        design.Exclusions.Add(new Exclusion { Name = "mole-1", Outline = mole, MarginMm = 2 });
        var crown = map.ToMap(fixture.Resolved.Landmarks.Crown);
        var strip = new SurfaceCurve();
        for (var x = -15.0; x <= 15; x += 5) strip.Points.Add(Pos(map.ToSurface(new MapPoint(crown.X + x, crown.Y))!.Value.Point));
        design.Scars.Add(new Scar
        {
            Name = "strip-1", Kind = ScarKind.Strip, Outline = strip, WidthMm = 4, DensityPerCm2 = 50,
            Needle = new Needle { Configuration = "1RL", DiameterMm = 0.25 }, DepthMm = 0.7, DwellMs = 150,
            PigmentPerSession = { "charcoal-3", "charcoal-2", "charcoal-2" }, FirstPassPigment = "espresso-1",
        });
        design.Pigments.Add(new PigmentShade { Id = "espresso-1", Lightness = 0.5 });
        var check = fixture.Resolve(design);
        Assert.True(check.IsValid, string.Join("\n", check.Violations));
        var dots = DesignPlanner.Generate(check.Design!);

        // Independently of the sampler: the mole's outline on the head, and no dot inside it or within 2 mm of it.
        var outline = check.Design!.Exclusions.Single().Outline.Polyline;
        var moleSurface = map.ToSurface(new MapPoint(moleCentre.X, moleCentre.Y))!.Value.Point;
        var innerRadius = outline.Points.Min(p => p.DistanceTo(moleSurface));
        Assert.All(dots.Dots, d => Assert.True(outline.DistanceWithin(d.PointMm, 2 - 0.01) is null && d.PointMm.DistanceTo(moleSurface) > innerRadius,
            $"{d.Id} is {d.PointMm.DistanceTo(moleSurface):0.00} mm from the mole's centre, within its outline or its 2 mm margin"));
        Assert.Contains(dots.Dots, d => d.PointMm.DistanceTo(moleSurface) < innerRadius + 4);
        Assert.Equal(0, DesignMetricsCalculator.Measure(dots).Goals.DotsInExclusions);

        var scar = dots.Dots.Where(d => d.Region.Name == "strip-1").ToList();
        Assert.NotEmpty(scar);
        Assert.All(scar, d =>
        {
            Assert.Equal(DotLayer.Scar, d.Layer);
            Assert.Equal(0.7, d.DepthMm);
            Assert.Equal("1RL-0.25", d.Needle.Label);
            Assert.Equal(d.Session == 1 ? "espresso-1" : "charcoal-2", d.PigmentId);
        });
        var line = check.Design.Scars.Single().Outline.Polyline;
        Assert.All(scar, d => Assert.True(line.DistanceWithin(d.PointMm, 2 + 0.01) is not null, $"{d.Id} is off the 4 mm wide strip"));
    }

    private static Position Pos(Vec3 p) => new() { XMm = p.X, YMm = p.Y, ZMm = p.Z };

    public static TheoryData<string, string> BrokenDesigns() => new()
    {
        { "units", "units" },
        { "session-count", "session-count" },
        { "session-shares", "session-shares" },
        { "session-order", "session-order" },
        { "shade-order", "shade-order" },
        { "pigment-unknown", "pigment-unknown" },
        { "density", "density" },
        { "needle", "needle" },
        { "depth", "depth-range" },
        { "dwell", "dwell-range" },
        { "overlap", "zone-overlap" },
        { "bow-tie", "curve-self-intersecting" },
        { "off-mesh", "curve-off-mesh" },
        { "band", "hairline-band" },
        { "spacing", "min-spacing" },
        { "duplicate-name", "name" },
        { "no-mesh", "mesh-missing" },
        { "huge-mesh", "mesh-size" },
        { "inside-out", "mesh-flipped-normals" },
        { "holed", "mesh-hole" },
        { "max-dots", "max-dots" },
    };

    [Theory]
    [MemberData(nameof(BrokenDesigns))]
    public void A_broken_design_is_refused_naming_its_rule(string broken, string rule)
    {
        var design = fixture.Design.Clone();
        var profile = TestProfiles.Sim();
        var frontal = design.Zones[0];
        switch (broken)
        {
            case "units": design.Units = "cm"; break;
            case "session-count": design.Sessions.Shares.Clear(); design.Sessions.Shares.Add(1.0); break;
            case "session-shares": design.Sessions.Shares[2] = 0.5; break;
            case "session-order": design.Sessions.Shares.Clear(); design.Sessions.Shares.Add([0.4, 0.3, 0.3]); break;
            case "shade-order": frontal.PigmentPerSession[1] = "charcoal-3"; frontal.PigmentPerSession[0] = "charcoal-1"; break;
            case "pigment-unknown": frontal.PigmentPerSession[2] = "ink-9"; break;
            case "density": frontal.DensityPerCm2 = 400; break;
            case "needle": frontal.Needle.DiameterMm = 0.5; break;
            case "depth": frontal.DepthMm = 3; break;
            case "dwell": frontal.DwellMs = 990; break;
            case "overlap": var copy = frontal.Clone(); copy.Name = "frontal-again"; design.Zones.Add(copy); break;
            case "bow-tie":
                var pts = frontal.Boundary.Points;
                (pts[3], pts[pts.Count / 2]) = (pts[pts.Count / 2], pts[3]);
                break;
            case "off-mesh": design.Hairline.Curve.Points[5].ZMm += 60; break;
            case "band": design.Hairline.BandWidthMm = 30; break;
            case "spacing": frontal.MinSpacingMm = 1.5; break;
            case "duplicate-name": design.Zones[1].Name = "frontal"; break;
            case "no-mesh": design.Head.Mesh = "missing.ply"; break;
            case "huge-mesh":
                WriteMesh("huge.ply", fixture.Mesh.Vertices.Select(v => v * 10).ToList(), fixture.Mesh.Indices.ToList());
                design.Head.Mesh = "huge.ply";
                break;
            case "inside-out":
                var reversed = fixture.Mesh.Indices.Select((_, i) => fixture.Mesh.Indices[(i / 3 * 3) + (2 - (i % 3))]).ToList();
                WriteMesh("inside-out.ply", fixture.Mesh.Vertices.ToList(), reversed);
                design.Head.Mesh = "inside-out.ply";
                break;
            case "holed":
                // Faces of the frontal zone taken out: a scan with a gap where dots go.
                var holed = new List<int>();
                var glabella = fixture.Resolved.Landmarks.ForeheadCrease;
                for (var f = 0; f < fixture.Mesh.FaceCount; f++)
                {
                    var (a, b, c) = fixture.Mesh.Corners(f);
                    if (((a + b + c) * (1.0 / 3)).DistanceTo(glabella + new Vec3(0, -8, 18)) < 6) continue;
                    holed.AddRange([fixture.Mesh.Indices[3 * f], fixture.Mesh.Indices[(3 * f) + 1], fixture.Mesh.Indices[(3 * f) + 2]]);
                }
                WriteMesh("holed.ply", fixture.Mesh.Vertices.ToList(), holed);
                design.Head.Mesh = "holed.ply";
                break;
            case "max-dots": profile = profile with { MaxDots = 1000 }; break;
            default: throw new ArgumentOutOfRangeException(nameof(broken));
        }
        var check = fixture.Resolve(design, profile);
        Assert.False(check.IsValid);
        Assert.Null(check.Design);
        Assert.Contains(check.Violations, v => v.Rule == rule);
        Assert.All(check.Violations, v => Assert.False(string.IsNullOrWhiteSpace(v.Message)));
    }

    private void WriteMesh(string name, List<Vec3> vertices, List<int> indices) =>
        MeshWriter.WritePly(new TriangleMesh(vertices, indices), Path.Combine(fixture.Directory, name));

    [Fact]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded points for a deterministic test: not security")]
    public void Pattern_metrics_read_a_hexagonal_grid_as_regular_and_random_points_as_random()
    {
        // A hexagonal grid of 1 mm, 60 x 60 points, on a plane.
        var grid = new List<Vec3>();
        for (var row = 0; row < 60; row++)
        {
            for (var col = 0; col < 60; col++) grid.Add(new Vec3(col + (row % 2 * 0.5), row * Math.Sqrt(3) / 2, 0));
        }
        var area = 60 * 60 * Math.Sqrt(3) / 2;
        var perimeter = 2 * (60 + (60 * Math.Sqrt(3) / 2));
        var hex = PatternMetrics.Of(grid, area, perimeter);
        Assert.InRange(hex.Rho, 0.97, 1.03);
        Assert.InRange(hex.ClarkEvans, 2.0, 2.2);
        Assert.InRange(hex.NearestCv, 0, 0.01);

        var rng = new Random(3);
        var random = Enumerable.Range(0, 4000).Select(_ => new Vec3(rng.NextDouble() * 60, rng.NextDouble() * 60, 0)).ToList();
        var stats = PatternMetrics.Of(random, 3600, 240);
        Assert.InRange(stats.ClarkEvans, 0.93, 1.07);
        Assert.True(stats.Rho < 0.1, $"rho {stats.Rho}");
    }
}
