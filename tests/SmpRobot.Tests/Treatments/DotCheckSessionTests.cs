using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;
using SmpRobot.Vision;
using Xunit.Abstractions;

namespace SmpRobot.Tests.Treatments;

/// <summary>
/// A treatment session run by the real controller with the synthetic camera tracking the head (time scale 1) and the
/// simulated person's skin, which the camera draws as the needle leaves pigment in it: the camera checks every dot it
/// can see. Dots in view are recorded on target with their small offsets, dots under the board stay unchecked, and the
/// dots the simulator was told to spoil (the needle slid 0.5 mm on the skin, or left no pigment) are flagged off target
/// or not seen, in the record and the audit, and are not placed again.
/// </summary>
[Collection(ControllerCollection.Name)]
public class DotCheckSessionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    /// <summary>The synthetic head camera is mounted exactly as the profile says.</summary>
    private static readonly CalibrationOverride TruthMounting = new() { Reason = "test: the profile's mounting is the synthetic camera's true mounting", Operator = "test" };

    /// <summary>How far a spoiled dot's pigment slid along the skin, frame S.</summary>
    private static readonly Vec3 Slide = new(0.5, 0, 0);

    [Fact]
    public async Task Dots_in_view_are_checked_on_target_those_under_the_board_stay_unchecked_and_a_slipped_or_dry_dot_is_flagged_never_redone()
    {
        var profile = ControllerFixture.Profile;
        var designPath = SmallDesign();
        var design = DesignResolver.Resolve(DesignLoader.Load(designPath), profile).Design ?? throw new InvalidOperationException("the test's design does not resolve");
        var dots = DesignPlanner.Generate(design).Dots.Where(d => d.Session == 1).ToList();
        var headFromScalp = DesignPlans.NominalHeadFromScalp(design);
        var scalp = SimulatedScalp.SyntheticHead();
        var boardOffMm = scalp.HeadFromScalp.Apply(Vec3.Zero).DistanceTo(headFromScalp.Apply(Vec3.Zero));
        Assert.True(boardOffMm < 0.01, $"the simulated board sits {boardOffMm:0.000} mm from where the design assumes");

#pragma warning disable CA2000 // the frame source made from it owns the scene (the controller disposes that)
        var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 21);
#pragma warning restore CA2000
        var region = DotSearchRegion.ForScene(scene);
        var cameraH = Rotations.Inverse(SyntheticScene.RestCameraFromHead).Translation;
        bool InView(Vec3 pointH, double marginMm) =>
            Enumerable.Range(0, 16).All(k => region.Contains(cameraH, pointH + new Vec3(marginMm * Math.Cos(k * Math.PI / 8), marginMm * Math.Sin(k * Math.PI / 8), 0)))
            && region.Contains(cameraH, pointH);
        var underBoard = dots.Where(d => !region.Contains(cameraH, headFromScalp.Apply(d.PointMm))).Select(d => d.Id).ToHashSet();
        // In view with the whole search disc and a margin: every such dot can be judged.
        var wholeInView = dots.Where(d => InView(headFromScalp.Apply(d.PointMm), 1.8)).Select(d => d.Id).ToList();
        Assert.True(underBoard.Count >= 3, $"{underBoard.Count} dots under the board");
        Assert.True(wholeInView.Count >= 8, $"{wholeInView.Count} dots wholly in view");
        // Two dots slide, two are dry; spread over the session (every other one of those wholly in view).
        var slipped = new[] { wholeInView[0], wholeInView[4] }.ToHashSet();
        var dry = new[] { wholeInView[2], wholeInView[6] }.ToHashSet();
        var spoiled = slipped.Concat(dry).ToHashSet();
        var byId = dots.ToDictionary(d => d.Id);
        var slides = slipped.Select(id => byId[id].PointMm).ToArray();
        var dries = dry.Select(id => byId[id].PointMm).ToArray();
        scalp.Pigment = p => slides.Any(s => s.DistanceTo(p) < 0.3) ? p + Slide : dries.Any(s => s.DistanceTo(p) < 0.3) ? null : p;

        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 1, Skin = scalp });
        await using var c = await ControllerFixture.StartAsync(simulator, timeScale: 1, headPose: _ =>
            Controller.CameraSetup.CreateTracked(new SyntheticFrameSource(scene, TimeProvider.System), MarkerBoard.DefaultHeadBoard(), profile, TimeProvider.System));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await c.HomeAsync();
        output.WriteLine($"homed in {clock.Elapsed}");
        await c.StartHeartbeatAsync();
        var treatments = new TreatmentService.TreatmentServiceClient(c.Channel);
        var info = await treatments.StartTreatmentAsync(new StartTreatmentRequest
        {
            ClientId = "C-0901",
            DesignJson = await File.ReadAllTextAsync(designPath),
            HeadModel = ByteString.CopyFrom(await File.ReadAllBytesAsync(Path.Combine(TestProfiles.RepoRoot, "hardware", "heads", "adult-synthetic.ply"))),
            HeadModelFile = "adult-synthetic.ply",
        }, deadline: DateTime.UtcNow.Add(Timeout));
        var sessionId = info.Sessions[0].Session.Id;
        Assert.Equal(dots.Count, info.Sessions[0].Session.Dots.Total);

        await c.Sessions.StartAsync(new SessionRef { SessionId = sessionId, CalibrationOverride = TruthMounting, SurfaceOverride = "test: the plan's skin heights are the simulated skin's" });
        var done = await c.WaitForAsync(sessionId, s => ControllerFixture.IsFinished(s) || s.State == SessionState.Paused && s.Dots.Pending == 0, Timeout);
        output.WriteLine($"session over at {clock.Elapsed}: {done.ElapsedSeconds:0.0} s running, {done.KinematicSeconds:0.0} s kinematic, {done.Tracking.Holds} holds");
        var checks = c.Services.GetRequiredService<DotChecks>();
        await checks.WhenIdleAsync().WaitAsync(Timeout);
        output.WriteLine($"checks done at {clock.Elapsed}");

        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var record = ledger.LoadTreatmentDots(info.Id).ToDictionary(d => d.DotId);
        foreach (var d in record.Values.OrderBy(d => d.DotId, StringComparer.Ordinal))
        {
            output.WriteLine(FormattableString.Invariant($"{d.DotId} {d.State} {d.Check} {d.CheckOffsetMm:0.000}{(underBoard.Contains(d.DotId) ? " under the board" : "")}{(wholeInView.Contains(d.DotId) ? " in view" : "")}{(slipped.Contains(d.DotId) ? " SLIPPED" : dry.Contains(d.DotId) ? " DRY" : "")}"));
        }
        Assert.Equal(0, done.Dots.Pending + done.Dots.Commanded);
        // A dot whose needle a motion hold pulled out (a loaded machine's stale pose) is in doubt: never checked. Every
        // other dot was placed, at least one of each kind of spoiled dot among them.
        Assert.All(record.Values.Where(d => d.State != DotLedgerState.Placed), d =>
        {
            Assert.Equal(DotLedgerState.InDoubt, d.State);
            Assert.Equal(DotCheckResult.NotChecked, d.Check);
        });
        slipped.RemoveWhere(id => record[id].State != DotLedgerState.Placed);
        dry.RemoveWhere(id => record[id].State != DotLedgerState.Placed);
        Assert.NotEmpty(slipped);
        Assert.NotEmpty(dry);

        // Under the board: never judged.
        Assert.All(underBoard, id => Assert.Equal(DotCheckResult.NotChecked, record[id].Check));
        // Wholly in view and placed as planned: on target, the offset small (the placement's own error plus the measurement's).
        var good = wholeInView.Where(id => !spoiled.Contains(id) && record[id].State == DotLedgerState.Placed).ToList();
        Assert.True(good.Count >= 3, $"{good.Count} dots wholly in view placed as planned");
        Assert.All(good, id =>
        {
            Assert.Equal(DotCheckResult.OnTarget, record[id].Check);
            Assert.InRange(record[id].CheckOffsetMm!.Value, 0, 0.1);
            Assert.NotNull(record[id].MeasuredS);
        });
        // No dot placed as planned is flagged, wherever it is.
        Assert.All(record.Values.Where(d => !spoiled.Contains(d.DotId)), d => Assert.True(d.Check is DotCheckResult.OnTarget or DotCheckResult.NotChecked, $"{d.DotId} flagged {d.Check}"));

        // The slipped dots: seen about 0.5 mm off, where their pigment really is (in S).
        Assert.All(slipped, id =>
        {
            Assert.Equal(DotCheckResult.OffTarget, record[id].Check);
            Assert.InRange(record[id].CheckOffsetMm!.Value, Slide.Length - 0.1, Slide.Length + 0.1);
            Assert.True(record[id].MeasuredS!.Value.DistanceTo(record[id].PlannedS + Slide) < 0.1, $"{id} measured at {record[id].MeasuredS}, its pigment is at {record[id].PlannedS + Slide}");
        });
        Assert.All(dry, id =>
        {
            Assert.Equal(DotCheckResult.NotSeen, record[id].Check);
            Assert.Null(record[id].MeasuredS);
        });

        // Flagged in the audit, once each, and only those; never redone: each was plunged once and stays placed.
        var flags = ledger.ReadAudit(sessionId).Where(a => a.Kind == "dot-flagged").Select(a => a.Message).ToList();
        Assert.Equal(slipped.Count + dry.Count, flags.Count); // a spoiled dot left in doubt is not checked
        Assert.All(slipped.Concat(dry), id => Assert.Single(flags, m => m.StartsWith($"dot {id}:", StringComparison.Ordinal) && m.Contains("not redone automatically", StringComparison.Ordinal)));
        var targets = ledger.LoadDots(sessionId).ToDictionary(d => d.Dot.DotId, d => d.TargetMm);
        // A plunge: a straight-down feed with the needle on, then its dwell at depth.
        var motions = c.Simulator.MotionRecord;
        var plunges = motions.Zip(motions.Skip(1)).Where(p => p.Second.Kind == SimMotionKind.Dwell && p.Second.DurationSeconds > 0.05 && p.First.Kind == SimMotionKind.Feed
            && p.First.SpindleOn && p.First.From.X == p.First.To.X && p.First.From.Y == p.First.To.Y && p.First.To.Z < p.First.From.Z).Select(p => p.First).ToList();
        Assert.All(slipped.Concat(dry), id => Assert.Single(plunges, p => Math.Abs(p.To.X - targets[id]!.Value.X) < 0.01 && Math.Abs(p.To.Y - targets[id]!.Value.Y) < 0.01));
        Assert.Equal(0, ledger.Tally(sessionId).Pending);

        // The session as the operator's console gets it: the camera's counts, measured.
        var session = await c.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
        Assert.Equal(slipped.Count, session.DotChecks.OffTarget);
        Assert.Equal(dry.Count, session.DotChecks.NotSeen);
        Assert.Equal(record.Values.Count(d => d.Check == DotCheckResult.OnTarget), session.DotChecks.OnTarget);
        var row = Operator.Cli.SessionView.DotCheckText(session);
        Assert.NotNull(row);
        Assert.Contains($"smp treatment dots {info.Id}", row!.Value.Text, StringComparison.Ordinal);
        // ...and the command it names lists them.
        var (code, listed, _) = await Cli.CliRunner.RunAsync("treatment", "dots", info.Id, "--controller", c.Address);
        Assert.Equal(0, code);
        Assert.All(slipped, id => Assert.Contains($"flagged: {id} (session 1) seen 0.", listed, StringComparison.Ordinal));
        Assert.All(dry, id => Assert.Contains($"flagged: {id} (session 1) not seen where it was placed", listed, StringComparison.Ordinal));
        Assert.Equal(slipped.Count + dry.Count, listed.Split('\n').Count(l => l.Contains("flagged: ", StringComparison.Ordinal)));
    }

    /// <summary>
    /// A small design on the synthetic head: the demo crown's zone cut down to an ellipse of 5 × 7 mm astride the edge of the
    /// board's sticker (14 dots in session 1: 3 under the board, the others in the camera's view), no hairline.
    /// </summary>
    private static string SmallDesign()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(TestProfiles.RepoRoot, "hardware", "designs", "demo-crown.design.json")))!;
        json["name"] = "dot check test";
        json["head"]!["mesh"] = Path.Combine(TestProfiles.RepoRoot, "hardware", "heads", "adult-synthetic.ply");
        json.AsObject().Remove("hairline");
        json["zones"]![0]!["boundary"]!["svgPath"] = "M -2.5,-16.5 A 2.5,3.5 0 1,0 2.5,-16.5 A 2.5,3.5 0 1,0 -2.5,-16.5 Z";
        var path = Path.Combine(Directory.CreateTempSubdirectory("smp-dot-check-").FullName, "dot-check.design.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }
}
