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

    /// <summary>
    /// What probing head position 1 leaves (as the treatment bench does): T_HS fitted to 16 contacts on the true skin,
    /// its height and tilt found, the board's slide along the skin mostly not. Returns the registration's id.
    /// </summary>
    private static string SaveProbe(LedgerStore ledger, string sessionId, ResolvedDesign design, RigidTransform truth)
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
        return ledger.SaveSurfaceRegistration(sessionId, 1, design.MeshSha256, JsonFormatter.Default.Format(DesignPlans.ToMessage(fit.HeadFromScalp)),
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
