using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Reports;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Tests.Treatment;

/// <summary>
/// Seeded synthetic report data: a head of radius 95 mm around S's origin (Z up, Y front), a feathered hairline
/// about 55 mm in front of the vertex on the map, two zones, a scar and an exclusion; dots on a jittered grid
/// behind the hairline. Same seed, same data: a sample the lead can regenerate (see ReportPdfTests).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded synthetic data for deterministic tests: not security")]
internal static class ReportSamples
{
    public const double HeadRadiusMm = 95;

    public static readonly DateTimeOffset SessionStart = new(2026, 3, 9, 9, 0, 0, TimeSpan.Zero);

    public static readonly ReportMapFrame Frame = new(Vec3.Zero, new Vec3(0, 0, 1), new Vec3(0, 1, 0));

    /// <summary>The skin point of a map point (the inverse of the map on a sphere).</summary>
    public static Vec3 OnHead(double x, double y)
    {
        var r = Math.Sqrt((x * x) + (y * y));
        var polar = r / ScalpMap.ReferenceRadiusMm;
        var azimuth = Math.Atan2(x, y);
        var dir = new Vec3(Math.Sin(polar) * Math.Sin(azimuth), Math.Sin(polar) * Math.Cos(azimuth), Math.Cos(polar));
        return dir * HeadRadiusMm;
    }

    /// <summary>The hairline's map Y at map X: a soft arc with a little waviness.</summary>
    private static double HairlineY(double x) => 55 - (0.006 * x * x) + (1.2 * Math.Sin(x / 6));

    public static ReportDesign Design()
    {
        static List<Vec3> Closed(IEnumerable<(double X, double Y)> pts) => [.. pts.Select(p => OnHead(p.X, p.Y))];
        var hairline = Enumerable.Range(-30, 61).Select(i => OnHead(i * 1.5, HairlineY(i * 1.5))).ToList();
        var front = Closed(Enumerable.Range(-30, 61).Select(i => (i * 1.5, HairlineY(i * 1.5) - 0.5)).Concat([(45.0, 15.0), (-45.0, 15.0)]));
        var crown = Closed(Enumerable.Range(0, 48).Select(i => (42 * Math.Cos(i * Math.PI / 24), -20 + (38 * Math.Sin(i * Math.PI / 24)))));
        var scar = Closed(Enumerable.Range(0, 24).Select(i => (20 + (9 * Math.Cos(i * Math.PI / 12)), -5 + (3 * Math.Sin(i * Math.PI / 12)))));
        var mole = Closed(Enumerable.Range(0, 16).Select(i => (-22 + (3 * Math.Cos(i * Math.PI / 8)), 25 + (3 * Math.Sin(i * Math.PI / 8)))));
        return new ReportDesign("Norwood 4 crown and front (synthetic)", Frame,
        [
            new OutlineCurve(OutlineKind.Hairline, "hairline", hairline, false),
            new OutlineCurve(OutlineKind.Zone, "front", front, true),
            new OutlineCurve(OutlineKind.Zone, "crown", crown, true),
            new OutlineCurve(OutlineKind.Scar, "FUT scar", scar, true),
            new OutlineCurve(OutlineKind.Exclusion, "mole", mole, true),
        ]);
    }

    /// <summary>
    /// About <paramref name="target"/> dot positions behind the hairline (map radius ≤ 62 mm, not on the mole), on a
    /// jittered grid whose phase depends on <paramref name="seed"/> so sessions interleave.
    /// </summary>
    public static List<Vec3> DotPositions(int seed, int target)
    {
        var random = new Random(seed);
        // Area behind the hairline within 62 mm: about 9,000 mm² of map.
        var spacing = Math.Sqrt(9000.0 / target);
        var (ox, oy) = (random.NextDouble() * spacing, random.NextDouble() * spacing);
        var dots = new List<Vec3>();
        for (var x = -62 + ox; x < 62; x += spacing)
        {
            for (var y = -62 + oy; y < 62; y += spacing)
            {
                var (px, py) = (x + ((random.NextDouble() - 0.5) * spacing * 0.7), y + ((random.NextDouble() - 0.5) * spacing * 0.7));
                if ((px * px) + (py * py) > 62 * 62 || py > HairlineY(px)) continue;
                if (Math.Sqrt(((px + 22) * (px + 22)) + ((py - 25) * (py - 25))) < 4) continue;
                // Fewer dots towards the hairline: its feathered band.
                if (py > HairlineY(px) - 6 && random.NextDouble() < (py - HairlineY(px) + 6) / 8) continue;
                dots.Add(OnHead(px, py));
            }
        }
        return dots;
    }

    private static double Gauss(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>A full session: ~2,000 dots, most placed and checked, a few skipped/pending/in doubt, holds, a pause, one e-stop, a long audit extract.</summary>
    public static SessionReportData Session(int seed = 14, int sessionNumber = 2, int auditEntries = 160)
    {
        var random = new Random(seed);
        var positions = DotPositions(seed + sessionNumber, 2000);
        var dots = new List<ReportDot>();
        for (var i = 0; i < positions.Count; i++)
        {
            var p = positions[i];
            var roll = random.NextDouble();
            var state = i >= positions.Count - 40 ? ReportDotState.Pending
                : roll < 0.015 ? ReportDotState.Skipped
                : i == 1207 || i == 1208 ? ReportDotState.InDoubt
                : ReportDotState.Placed;
            Vec3? offset = null;
            double? depthError = null;
            string? flag = null;
            if (state == ReportDotState.Placed)
            {
                // The offset along the skin: two tangent directions at p.
                var n = p.Normalized();
                var t1 = Vec3.Cross(new Vec3(0, 0, 1), n);
                t1 = t1.Length > 1e-6 ? t1.Normalized() : new Vec3(1, 0, 0);
                var t2 = Vec3.Cross(n, t1);
                if (random.NextDouble() < 0.93)
                {
                    offset = (t1 * ((0.04 + (0.07 * Gauss(random))) * 1.0)) + (t2 * (0.07 * Gauss(random)));
                    if (offset.Value.Length > 0.22) flag = string.Create(CultureInfo.InvariantCulture, $"offset {offset.Value.Length:0.00} mm beyond 0.22 mm");
                }
                if (random.NextDouble() < 0.97) depthError = 0.01 + (0.05 * Gauss(random));
            }
            else if (state == ReportDotState.InDoubt)
            {
                flag = "in doubt: link fault between plunge and confirmation";
            }
            dots.Add(new ReportDot(
                string.Create(CultureInfo.InvariantCulture, $"s{sessionNumber}-d{i:00000}"), p,
                state is ReportDotState.Pending ? null : new Vec3(-100 + p.X, -100 + p.Y, -20 + p.Z),
                state, offset, 1.1, depthError, p.Y > 40 ? "front" : "crown", flag));
        }

        var t0 = SessionStart;
        var timeline = new List<TimelineEvent>
        {
            new(t0.AddMinutes(1), TimelineEventKind.Resume, "started", "alice"),
            new(t0.AddMinutes(14), TimelineEventKind.Hold, "head moved 2.6 mm/s, profile allows 2.0 mm/s"),
            new(t0.AddMinutes(14.5), TimelineEventKind.Resume, "", "alice"),
            new(t0.AddMinutes(31), TimelineEventKind.Hold, "head position 2: the operator turns the head (patch 2)"),
            new(t0.AddMinutes(33), TimelineEventKind.Resume, "", "alice"),
            new(t0.AddMinutes(47), TimelineEventKind.Pause, "client asked for a break", "alice"),
            new(t0.AddMinutes(56), TimelineEventKind.Resume, "", "bob"),
            new(t0.AddMinutes(63), TimelineEventKind.EmergencyStop, "EMERGENCY STOP from the console (client sneezed)", "bob"),
            new(t0.AddMinutes(66), TimelineEventKind.Reset, "e-stop reset after re-homing", "bob"),
            new(t0.AddMinutes(68), TimelineEventKind.Resume, "", "bob"),
            new(t0.AddMinutes(71), TimelineEventKind.Hold, "pose stale: 180 ms since the last frame (limit 100 ms)"),
            new(t0.AddMinutes(71.3), TimelineEventKind.Resume, "", "bob"),
        };
        var operators = new List<OperatorAction>
        {
            new("alice", "operator", "started", t0.AddMinutes(1)),
            new("bob", "operator", "resumed after the pause", t0.AddMinutes(56)),
            new("bob", "operator", "reset the e-stop latch", t0.AddMinutes(66)),
            new("carol", "engineer", "resolved 2 in-doubt dots: left in doubt for review", t0.AddMinutes(90)),
        };
        string[] rpcs = ["SessionService/Start", "SessionService/Pause", "SessionService/Resume", "SurfaceService/ProbeSurface", "SessionService/ResolveDot", "SafetyService/EmergencyStop", "SafetyService/Reset", "SessionService/GetStatus"];
        var audit = Enumerable.Range(0, auditEntries).Select(i => new AuditEntry(
            t0.AddSeconds(i * 37),
            i % 3 == 0 ? "bob" : "alice",
            "operator",
            "smprobot.v1." + rpcs[i % rpcs.Length],
            i % 17 == 5 ? "PermissionDenied: role operator may not reset" : "OK")).ToList();

        return new SessionReportData(
            TreatmentId: "T-2026-0042",
            ClientPseudonym: "C-7F3A",
            Design: Design(),
            SessionNumber: sessionNumber,
            SessionCount: 3,
            SessionId: string.Create(CultureInfo.InvariantCulture, $"S-2026-0042-{sessionNumber}"),
            PlanName: string.Create(CultureInfo.InvariantCulture, $"norwood4-session{sessionNumber}"),
            Profile: "bench-gantry-v2",
            Created: t0.AddMinutes(-20),
            Started: t0.AddMinutes(1),
            Ended: t0.AddMinutes(95),
            FinalPhase: "Stopped",
            FinalReason: "operator ended the session with 40 dots pending (client tired)",
            Operators: operators,
            Dots: dots,
            Timeline: timeline,
            Calibration: new CalibrationUsed("cal-2026-03-02-a", new DateTimeOffset(2026, 3, 2, 16, 40, 0, TimeSpan.Zero), 0.041, "carol"),
            Registrations:
            [
                new SurfaceRegistrationUsed(1, 0.021, 0.044, 24, 23, true),
                new SurfaceRegistrationUsed(2, 0.026, 0.061, 24, 22, true),
                new SurfaceRegistrationUsed(2, 0.031, 0.070, 20, 19, true, WithdrawnBecause: "re-check 0.21 mm off the surface"),
            ],
            Match: sessionNumber > 1 ? new DotMatchResult(1874, 1851, 0.083, 0.162) : null,
            Audit: audit);
    }

    /// <summary>A session that created a plan and never placed a dot: no camera, no match, no events, no audit.</summary>
    public static SessionReportData EmptySession()
    {
        var dots = DotPositions(3, 400).Select((p, i) => new ReportDot(string.Create(CultureInfo.InvariantCulture, $"d{i}"), p, null, ReportDotState.Pending, null, 1.0, null)).ToList();
        return Session(sessionNumber: 1) with
        {
            Dots = dots,
            Started = null,
            Ended = null,
            FinalPhase = "Created",
            FinalReason = "",
            Operators = [],
            Timeline = [],
            Calibration = null,
            Registrations = [],
            Match = null,
            Audit = [],
        };
    }

    /// <summary>A treatment of three sessions (the third cut short) and one touch-up.</summary>
    public static TreatmentReportData Treatment(int seed = 14)
    {
        var dots = new List<PlacedDot>();
        var sessions = new List<SessionSummary>();
        int[] planned = [2000, 2000, 1500];
        for (var k = 1; k <= 3; k++)
        {
            var positions = DotPositions(seed + (k * 101), planned[k - 1]);
            var placed = k == 3 ? positions.Take(positions.Count * 2 / 3).ToList() : positions;
            dots.AddRange(placed.Select(p => new PlacedDot(p, k)));
            sessions.Add(new SessionSummary(k, string.Create(CultureInfo.InvariantCulture, $"S-2026-0042-{k}"), SessionStart.AddDays(21 * (k - 1)),
                placed.Count, positions.Count, k + 1, k == 2 ? 1 : 0, k == 1 ? null : 0.07 + (0.01 * k), k == 3 ? "Stopped" : "Completed"));
        }
        return new TreatmentReportData("T-2026-0042", "C-7F3A", Design(), 3, sessions, dots,
            [new TouchUp(SessionStart.AddDays(400), "S-2027-0042-T1", 310, "fading at the left temple")]);
    }
}
