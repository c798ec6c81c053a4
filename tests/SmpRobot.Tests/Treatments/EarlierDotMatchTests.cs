using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Treatments;

/// <summary>
/// A later session finds the earlier session's healed dots with the camera and matches them to the treatment's record:
/// the board worn elsewhere today is found, the session is placed relative to it, and a covered scalp is refused.
/// </summary>
[Collection(ControllerCollection.Name)]
public class EarlierDotMatchTests
{
    private static readonly string MeshPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "heads", "adult-synthetic.ply");

    // The Norwood VI preset on the bundled head: its dots cover the vertex, which the camera sees around the board.
    private static readonly Lazy<string> NorwoodDesign = new(() =>
    {
        var heads = Path.Combine(TestProfiles.RepoRoot, "hardware", "heads");
        var head = JsonParser.Default.Parse<HeadModel>(File.ReadAllText(Path.Combine(heads, "adult-synthetic.head.json")));
        var mesh = SmpRobot.Treatment.Mesh.MeshReader.Read(Path.Combine(heads, head.Mesh));
        head.Mesh = Path.Combine(heads, head.Mesh);
        var path = Path.Combine(Directory.CreateTempSubdirectory("smp-norwood-").FullName, "norwood-6.design.json");
        File.WriteAllText(path, DesignLoader.Format(SmpRobot.Treatment.Heads.NorwoodPresets.Create(6, head, mesh)));
        return path;
    });

    private static string DesignPath => NorwoodDesign.Value;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task The_board_worn_elsewhere_today_is_found_from_the_earlier_dots_and_the_session_is_placed_on_it()
    {
        var (design, dots) = Design();
        var nominal = DesignPlans.NominalHeadFromScalp(design);
        // Today the board sits 2 degrees further along the skin and 3 degrees turned: about 3.5 mm of slide, which probing cannot see.
        var moved = Rotations.FromMatrix(Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(2 * Math.PI / 180, 0, 0)), Rotations.MatrixFromVector(new Vec3(0, 0, 3 * Math.PI / 180))), Vec3.Zero);
        var truth = nominal * moved;
        var session1 = dots.Dots.Where(d => d.Session == 1).ToList();
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 7);
        var r = Rotations.RotationMatrix(truth);
#pragma warning disable CA5394 // a seeded simulation of healed dots, not security
        var random = new Random(14);
        scene.HealedDots = session1.Select(d => new HealedDot(truth.Apply(d.PointMm + new Vec3(random.NextDouble() * 0.1 - 0.05, random.NextDouble() * 0.1 - 0.05, 0)),
            Rotate(r, d.Normal), 0.3 + (random.NextDouble() * 0.2), 0.55 + (random.NextDouble() * 0.2))).ToList();
#pragma warning restore CA5394

        await using var host = await StartAsync(scene);
        var (treatments, sessionId, ledger) = await SecondSessionAsync(host.Fixture);
        var notProbed = await Assert.ThrowsAsync<RpcException>(() => treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = sessionId, Patch = 1 }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, notProbed.StatusCode);
        Assert.Contains("smp surface probe", notProbed.Status.Detail, StringComparison.Ordinal);
        var probe = SaveProbe(ledger, sessionId, design, truth);

        // Probed but not matched: the controller itself refuses to place the head position (not only smp run).
        var surface = new SurfaceService.SurfaceServiceClient(host.Fixture.Channel);
        var needed = await surface.SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = sessionId }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.False(needed.Needed, needed.Reason);
        Assert.True(needed.MatchNeeded, needed.MatchReason);
        Assert.False(needed.TouchUp);
        await host.Fixture.HomeAsync();
        await host.Fixture.StartHeartbeatAsync();
        var unmatched = await Assert.ThrowsAsync<RpcException>(() => host.Fixture.Sessions.StartAsync(new SessionRef { SessionId = sessionId }, deadline: DateTime.UtcNow.Add(Timeout)).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, unmatched.StatusCode);
        Assert.Contains($"smp treatment match {sessionId}", unmatched.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(SessionPhase.Created, ledger.FindSession(sessionId)!.Phase);
        await host.Fixture.StopHeartbeatAsync();

        var match = await treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = sessionId, Patch = 1 }, deadline: DateTime.UtcNow.Add(Timeout));

        Assert.True(match.Accepted, $"{match.Reason}; found {match.Found}, expected in view {match.ExpectedInView}, matched {match.Matched}, visible {session1.Count(d => scene.HealedDotVisible(SyntheticScene.RestCameraFromHead, new HealedDot(truth.Apply(d.PointMm), Rotate(r, d.Normal), 0.3, 0.5)))} of {session1.Count}");
        Assert.True(match.Matched >= 12, $"{match.Matched} matched");
        Assert.True(match.Matched >= 0.95 * match.ExpectedInView, $"{match.Matched} of {match.ExpectedInView} expected in view");
        Assert.InRange(match.ResidualRmsMm, 0, 0.15);
        Assert.True(match.MovedFromInitialMm > 2, $"the board moved {match.MovedFromInitialMm:0.00} mm from the plan's nominal place");
        Assert.False(match.PicturePng.IsEmpty);

        // The head position is now registered on the match: T_HS within 0.1 mm of the truth over the dots in view.
        var registration = ledger.LatestSurfaceRegistration(sessionId, 1)!;
        Assert.Equal(match.RegistrationId, registration.Id);
        var found = Controller.Surface.SurfaceProbing.TransformFromJson(registration.HeadFromScalpJson);
        var inView = session1.Where(d => scene.HealedDotVisible(SyntheticScene.RestCameraFromHead, new HealedDot(truth.Apply(d.PointMm), Rotate(r, d.Normal), 0.3, 0.5))).ToList();
        Assert.NotEmpty(inView);
        var error = inView.Max(d => found.Apply(d.PointMm).DistanceTo(truth.Apply(d.PointMm)));
        Assert.True(error <= 0.10, $"registration error {error:0.000} mm over {inView.Count} dots in view");

        Assert.NotEqual(probe, match.RegistrationId);
        // New dots too close to an earlier dot found were left out, each saying why; none was placed.
        var tally = ledger.Tally(sessionId);
        // Every new dot still pending keeps 0.9 of its spacing from the earlier dots as they truly are.
        var byId = dots.Dots.ToDictionary(d => d.Id);
        var pendingIds = ledger.LoadDotsInState(sessionId, DotLedgerState.Pending).Select(d => d.Dot.DotId).ToList();
        foreach (var id in pendingIds)
        {
            var d = byId[id];
            var nearest = inView.Min(o => truth.Apply(o.PointMm).DistanceTo(found.Apply(d.PointMm)));
            Assert.True(nearest >= 0.9 * d.Region.MinSpacingMm - 0.1, $"new dot {id} is {nearest:0.000} mm from an earlier dot");
        }
        Assert.Equal(match.LeftOut, tally.Skipped);
        Assert.All(ledger.LoadDotsInState(sessionId, DotLedgerState.Skipped), d => Assert.StartsWith("left out:", d.Note, StringComparison.Ordinal));

        var after = await surface.SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = sessionId }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.False(after.MatchNeeded, after.MatchReason);

        var report = host.Fixture.Services.GetRequiredService<Controller.Sessions.SessionReports>().SessionData(sessionId);
        Assert.NotNull(report.Match);
        Assert.Equal(match.Matched, report.Match!.DotsMatched);
    }

    [Fact]
    public async Task A_covered_scalp_is_refused_and_nothing_changes()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 8);
        await using var host = await StartAsync(scene);
        var (treatments, sessionId, ledger) = await SecondSessionAsync(host.Fixture);
        var (design, _) = Design();
        var probe = SaveProbe(ledger, sessionId, design, DesignPlans.NominalHeadFromScalp(design));

        var match = await treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = sessionId, Patch = 1 }, deadline: DateTime.UtcNow.Add(Timeout));

        Assert.False(match.Accepted);
        Assert.False(string.IsNullOrWhiteSpace(match.Reason));
        Assert.Equal("", match.RegistrationId);
        Assert.Equal(probe, ledger.LatestSurfaceRegistration(sessionId, 1)!.Id);
        Assert.Equal(0, ledger.Tally(sessionId).Skipped);
        Assert.Contains(ledger.ReadAudit(sessionId), a => a.Kind == "dot-match" && a.Message.Contains("refused", StringComparison.Ordinal));

        // A first session has nothing to match: refused as a precondition.
        var info = (await treatments.ListTreatmentsAsync(new ListTreatmentsRequest())).Treatments.Single();
        var first = await Assert.ThrowsAsync<RpcException>(() => treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = info.Sessions[0].Session.Id }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, first.StatusCode);
    }

    [Fact]
    public async Task A_touch_up_restores_only_the_dots_the_camera_sees_faded_or_missing()
    {
        var (design, dots) = Design();
        var nominal = DesignPlans.NominalHeadFromScalp(design);
        // Years later the board is worn elsewhere again: 3 degrees along the skin, 2 degrees turned.
        var moved = Rotations.FromMatrix(Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(0, 3 * Math.PI / 180, 0)), Rotations.MatrixFromVector(new Vec3(0, 0, -2 * Math.PI / 180))), Vec3.Zero);
        var truth = nominal * moved;
        var session1 = dots.Dots.Where(d => d.Session == 1).ToList();
        var r = Rotations.RotationMatrix(truth);
        // Every 17th dot is lost, every 13th (not lost) faded to a third of its look; the rest are as healed.
        static bool Gone(int i) => i % 17 == 5;
        static bool Faded(int i) => !Gone(i) && i % 13 == 7;
        using var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(), seed: 9);
#pragma warning disable CA5394 // a seeded simulation of healed dots, not security
        var random = new Random(15);
        scene.HealedDots = session1.Select((d, i) => (d, i)).Where(x => !Gone(x.i)).Select(x => new HealedDot(truth.Apply(x.d.PointMm), Rotate(r, x.d.Normal),
            0.3 + (random.NextDouble() * 0.2), (0.55 + (random.NextDouble() * 0.2)) * (Faded(x.i) ? 0.3 : 1))).ToList();
#pragma warning restore CA5394

        await using var host = await StartAsync(scene);
        var (treatments, second, ledger) = await SecondSessionAsync(host.Fixture);
        var early = await Assert.ThrowsAsync<RpcException>(() => treatments.TouchUpAsync(new TreatmentRef { TreatmentId = ledger.FindSession(second)!.TreatmentId }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, early.StatusCode);
        Assert.Contains("smp treatment next", early.Status.Detail, StringComparison.Ordinal);
        var treatmentId = ledger.FindSession(second)!.TreatmentId!;
        await host.Fixture.Sessions.AbortAsync(new SessionRef { SessionId = second });
        await treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = treatmentId, EarlyReason = "test" }, deadline: DateTime.UtcNow.Add(Timeout));
        var third = (await treatments.GetTreatmentAsync(new TreatmentRef { TreatmentId = treatmentId })).Sessions[^1].Session.Id;
        await host.Fixture.Sessions.AbortAsync(new SessionRef { SessionId = third });

        var info = await treatments.TouchUpAsync(new TreatmentRef { TreatmentId = treatmentId }, deadline: DateTime.UtcNow.Add(Timeout));
        var touchUp = info.Sessions[^1];
        Assert.True(touchUp.TouchUp);
        Assert.Equal(4u, touchUp.Number);
        var touchUpId = touchUp.Session.Id;
        // One candidate per dot on record, where the record says it is.
        var candidates = ledger.LoadTreatmentDots(treatmentId).Where(d => d.SessionId == touchUpId).ToList();
        var placed1 = ledger.LoadTreatmentDots(treatmentId).Where(d => d.SessionNumber == 1 && d.State == DotLedgerState.Placed).ToDictionary(d => d.DesignDotId);
        Assert.Equal(placed1.Count, candidates.Count);
        Assert.All(candidates, c => Assert.True(c.PlannedS.DistanceTo(placed1[c.DesignDotId].PlannedS) < 1e-6));
        // A second touch-up while this one is open is refused.
        var again = await Assert.ThrowsAsync<RpcException>(() => treatments.TouchUpAsync(new TreatmentRef { TreatmentId = treatmentId }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, again.StatusCode);

        // The head position whose dots the camera sees most of (it sees the skin around the board, whatever the turn).
        var patches = Controller.Plans.PlanPatches.OfJson(ledger.LoadPlanJson(touchUpId));
        var byDesign = session1.ToDictionary(d => d.Id);
        bool Visible(string designDotId) => scene.HealedDotVisible(SyntheticScene.RestCameraFromHead, new HealedDot(truth.Apply(byDesign[designDotId].PointMm), Rotate(r, byDesign[designDotId].Normal), 0.3, 0.5));
        var patch = candidates.Where(c => Visible(c.DesignDotId)).GroupBy(c => patches.Of(c.DotId)).MaxBy(g => g.Count())!.Key;
        SaveProbe(ledger, touchUpId, design, truth, patch);
        // A touch-up never starts a head position the camera has not surveyed, override or not.
        var surface = new SurfaceService.SurfaceServiceClient(host.Fixture.Channel);
        var needed = await surface.SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = touchUpId }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.True(needed.MatchNeeded && needed.TouchUp, needed.MatchReason);
        await host.Fixture.HomeAsync();
        await host.Fixture.StartHeartbeatAsync();
        var blind = await Assert.ThrowsAsync<RpcException>(() => host.Fixture.Sessions.StartAsync(new SessionRef { SessionId = touchUpId, SurfaceOverride = "test: no camera today" }, deadline: DateTime.UtcNow.Add(Timeout)).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, blind.StatusCode);
        Assert.Contains("no override", blind.Status.Detail, StringComparison.Ordinal);
        await host.Fixture.StopHeartbeatAsync();
        Assert.Equal(SessionPhase.Created, ledger.FindSession(touchUpId)!.Phase);

        var match = await treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = touchUpId, Patch = (uint)patch }, deadline: DateTime.UtcNow.Add(Timeout));

        Assert.True(match.Accepted, match.Reason);
        var survey = match.TouchUp;
        Assert.NotNull(survey);
        // What the camera could judge: the head position's dots it sees (where they truly are).
        var inPatch = candidates.Where(c => patches.Of(c.DotId) == patch).ToList();
        Assert.Equal(inPatch.Count, survey!.Candidates);
        var index = session1.Select((d, i) => (d.Id, i)).ToDictionary(x => x.Id, x => x.i);
        // Clearly in view: the dot and the skin 1.5 mm around it, in the region the camera searches (nothing is judged at its edge).
        var region = DotSearchRegion.ForScene(scene);
        var cameraH = Rotations.Inverse(SyntheticScene.RestCameraFromHead).Translation;
        bool ClearlyVisible(string designDotId)
        {
            var d = byDesign[designDotId];
            var n = d.Normal;
            var t1 = Vec3.Cross(n, Math.Abs(n.Z) < 0.9 ? new Vec3(0, 0, 1) : new Vec3(1, 0, 0)).Normalized();
            var t2 = Vec3.Cross(n, t1);
            return new[] { Vec3.Zero, t1 * 1.5, t1 * -1.5, t2 * 1.5, t2 * -1.5 }.All(o =>
                scene.HealedDotVisible(SyntheticScene.RestCameraFromHead, new HealedDot(truth.Apply(d.PointMm + o), Rotate(r, n), 0.3, 0.5))
                && region.Contains(cameraH, truth.Apply(d.PointMm + o)));
        }
        var visible = inPatch.Where(c => ClearlyVisible(c.DesignDotId)).ToList();
        Assert.True(visible.Count >= 40, $"{visible.Count} of head position {patch}'s dots in view");
        var pending = ledger.LoadDotsInState(touchUpId, DotLedgerState.Pending).Select(d => d.Dot.DotId).ToHashSet();
        Assert.Equal(survey.Faded + survey.Missing + candidates.Count(c => patches.Of(c.DotId) != patch), pending.Count);

        // Every lost or faded dot the camera sees is restored; of the healthy ones, hardly any is placed again.
        var lost = visible.Where(c => Gone(index[c.DesignDotId]) || Faded(index[c.DesignDotId])).ToList();
        Assert.NotEmpty(lost);
        var restored = lost.Count(c => pending.Contains(c.DotId));
        var notes = ledger.LoadDots(touchUpId).ToDictionary(d => d.Dot.DotId, d => d.Note);
        // A lost dot with a hair beside it is left out on purpose (a double would show), and a faded one can look as dark as a
        // healthy one beside a hair: most are restored, every other one says why.
        Assert.All(lost.Where(c => !pending.Contains(c.DotId)), c => Assert.StartsWith("left out:", notes[c.DotId], StringComparison.Ordinal));
        Assert.True(restored >= 0.75 * lost.Count, $"{restored} of {lost.Count} lost or faded dots in view restored: " + string.Join("; ", lost.Where(c => !pending.Contains(c.DotId)).Select(c => $"{(Gone(index[c.DesignDotId]) ? "gone" : "faded")}: {notes[c.DotId]}")) + $"; {survey}");
        var healthy = visible.Where(c => !Gone(index[c.DesignDotId]) && !Faded(index[c.DesignDotId])).ToList();
        var again2 = healthy.Count(c => pending.Contains(c.DotId));
        Assert.True(again2 <= Math.Max(1, 0.05 * healthy.Count), $"{again2} of {healthy.Count} healthy dots in view would be placed again");
        // The head position's dots out of view are left out, each saying so; no dot of another head position was decided.
        Assert.All(inPatch.Where(c => !pending.Contains(c.DotId)), c => Assert.StartsWith("left out:", ledger.LoadDots(touchUpId).Single(d => d.Dot.DotId == c.DotId).Note, StringComparison.Ordinal));
        Assert.All(candidates.Where(c => patches.Of(c.DotId) != patch), c => Assert.Contains(c.DotId, pending));
        Assert.Contains(ledger.ReadAudit(touchUpId), a => a.Kind == "dot-match" && a.Message.Contains("touch-up:", StringComparison.Ordinal));
        var after = await surface.SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = touchUpId }, deadline: DateTime.UtcNow.Add(Timeout));
        if (after.Patch == patch) Assert.False(after.MatchNeeded, after.MatchReason);
    }

    /// <summary>
    /// What probing head position 1 leaves (as the treatment bench does): T_HS fitted to 16 contacts on the true skin,
    /// its height and tilt found, the board's slide along the skin mostly not. Returns the registration's id.
    /// </summary>
    private static string SaveProbe(LedgerStore ledger, string sessionId, ResolvedDesign design, RigidTransform truth, int patch = 1)
    {
        var scalpFromTruth = Rotations.Inverse(truth);
        var contacts = new List<Vec3>();
        for (var gx = -1.5; gx <= 1.5; gx += 1)
        {
            for (var gy = -1.5; gy <= 1.5; gy += 1)
            {
                var above = new Vec3(gx * 16, gy * 13, 30);
                if (design.Mesh.Raycast(scalpFromTruth.Apply(above), scalpFromTruth.Apply(above - new Vec3(0, 0, 1)) - scalpFromTruth.Apply(above)) is { } touched) contacts.Add(truth.Apply(touched.Point));
            }
        }
        var fit = SmpRobot.Treatment.Surface.SurfaceRegistration.Fit(design.Mesh, contacts, DesignPlans.NominalHeadFromScalp(design));
        return ledger.SaveSurfaceRegistration(sessionId, patch, design.MeshSha256, JsonFormatter.Default.Format(DesignPlans.ToMessage(fit.HeadFromScalp)),
            0.01, 0.02, 0.03, contacts.Count, contacts.Count, "[]", valid: true, "test: probed").Id;
    }

    private static (ResolvedDesign Design, DesignDots Dots) Design()
    {
        var check = DesignResolver.Resolve(DesignLoader.Load(DesignPath), ControllerFixture.Profile);
        return (check.Design!, DesignPlanner.Generate(check.Design!));
    }

    /// <summary>A treatment whose session 1 was placed (every dot recorded Placed) and aborted, and its session 2.</summary>
    private static async Task<(TreatmentService.TreatmentServiceClient Client, string SessionId, LedgerStore Ledger)> SecondSessionAsync(ControllerFixture c)
    {
        var treatments = new TreatmentService.TreatmentServiceClient(c.Channel);
        var info = await treatments.StartTreatmentAsync(new StartTreatmentRequest
        {
            ClientId = "C-0077",
            DesignJson = await File.ReadAllTextAsync(DesignPath),
            HeadModel = ByteString.CopyFrom(await File.ReadAllBytesAsync(MeshPath)),
            HeadModelFile = "adult-synthetic.ply",
        }, deadline: DateTime.UtcNow.Add(Timeout));
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var first = info.Sessions[0].Session.Id;
        foreach (var dot in ledger.LoadDots(first))
        {
            ledger.MarkCommanded(first, dot.Dot.Seq, new Vec3(-100, -100, -20));
            ledger.MarkPlaced(first, dot.Dot.Seq);
        }
        await c.Sessions.AbortAsync(new SessionRef { SessionId = first });
        var next = await treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = info.Id, EarlyReason = "test" }, deadline: DateTime.UtcNow.Add(Timeout));
        return (treatments, next.Sessions[1].Session.Id, ledger);
    }

    private static async Task<Host> StartAsync(SyntheticScene scene)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
#pragma warning disable CA2000 // the controller's container owns and disposes the tracked source
        var tracked = new TrackedHeadPoseSource(new OneFrame(new SyntheticFrameSource(scene, TimeProvider.System)), MarkerBoard.DefaultHeadBoard(), RigidTransform.Identity, TimeProvider.System);
#pragma warning restore CA2000
        tracked.PoseUpdated += (_, _) => seen.TrySetResult();
#pragma warning disable CA2000 // handed to the caller, who disposes it
        var fixture = await ControllerFixture.StartAsync(headPose: _ => tracked);
#pragma warning restore CA2000
        try
        {
            _ = fixture.Services.GetRequiredService<IHeadPoseSource>();
            if (tracked.CopyLastFrameWithPose() is null) await seen.Task.WaitAsync(Timeout);
            return new Host(fixture);
        }
        catch
        {
            await fixture.DisposeAsync();
            throw;
        }
    }

    private sealed record Host(ControllerFixture Fixture) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Fixture.DisposeAsync();
    }

    /// <summary>One frame of the scene, then the recording is over: what the match looks at cannot change under the test.</summary>
    private sealed class OneFrame(SyntheticFrameSource inner) : IFrameSource, IScalpView
    {
        private bool _read;

        public string Description => inner.Description;
        public CameraIntrinsics? Intrinsics => inner.Intrinsics;
        public bool PacesItself => false;
        public TimeSpan FrameInterval => inner.FrameInterval;
        public DotSearchRegion DotSearchRegion => inner.DotSearchRegion;

        public Frame? Read()
        {
            if (_read) return null;
            _read = true;
            return inner.Read();
        }

        public void Dispose()
        {
            // The scene belongs to the test.
        }
    }

    private static Vec3 Rotate(double[] r, Vec3 v) => new(
        (r[0] * v.X) + (r[1] * v.Y) + (r[2] * v.Z),
        (r[3] * v.X) + (r[4] * v.Y) + (r[5] * v.Z),
        (r[6] * v.X) + (r[7] * v.Y) + (r[8] * v.Z));
}
