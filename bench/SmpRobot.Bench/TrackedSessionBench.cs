using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Vision;

namespace SmpRobot.Bench;

/// <summary>
/// Tracked sessions on the simulated gantry at time scale 1 with the synthetic camera tracked live
/// (the controller's own tracker and gates): placement error of every completed plunge against the
/// scene's ground truth at the moment the needle reached depth (breathing sway), and the reaction
/// to jerks, from the first frame that shows a jerk to the feed-hold byte arriving at the gantry.
/// </summary>
internal static class TrackedSessionBench
{
    /// <summary>The synthetic head camera is mounted exactly as the profile says: that mounting is the truth placement is checked against.</summary>
    private static readonly CalibrationOverride TruthMounting = new() { Reason = "bench: the profile's mounting is the synthetic camera's true mounting", Operator = "bench" };

    public static async Task<Dictionary<string, object>> RunAsync(int swayDots, int jerkDots)
    {
        var placement = await PlacementAsync(swayDots);
        var jerk = await JerkAsync(jerkDots);
        var figures = new Dictionary<string, object>();
        foreach (var (k, v) in placement) figures[k] = v;
        foreach (var (k, v) in jerk) figures[k] = v;
        return figures;
    }

    /// <summary>A frame source that remembers when each frame was captured (to find a jerk's first frame).</summary>
    private sealed class RecordingFrames(SyntheticFrameSource inner) : IFrameSource
    {
        private readonly List<long> _captured = [];

        public SyntheticFrameSource Inner => inner;
        public string Description => inner.Description;
        public CameraIntrinsics? Intrinsics => inner.Intrinsics;
        public bool PacesItself => inner.PacesItself;
        public TimeSpan FrameInterval => inner.FrameInterval;

        public long[] Captured
        {
            get { lock (_captured) return [.. _captured]; }
        }

        public Frame? Read()
        {
            var frame = inner.Read();
            lock (_captured) _captured.Add(frame.CapturedTimestamp);
            return frame;
        }

        public void Dispose() => inner.Dispose();
    }

    private static async Task<(BenchRig Rig, SimulatedGantry Gantry, RecordingFrames Frames, MachineProfile Profile)> StartAsync(SyntheticScene scene)
    {
        var profilePath = BenchRig.ProfilePath("sim");
        var profile = MachineProfile.Load(profilePath);
        var gantry = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 1 });
        RecordingFrames? frames = null;
        var rig = await BenchRig.StartAsync(new ControllerOptions
        {
            ProfilePath = profilePath,
            DataDirectory = Directory.CreateTempSubdirectory("smp-bench-track-").FullName,
            Simulator = gantry,
            HeadPoseSource = _ =>
            {
                frames = new RecordingFrames(new SyntheticFrameSource(scene, TimeProvider.System));
                return CameraSetup.CreateTracked(frames, MarkerBoard.DefaultHeadBoard(), profile, TimeProvider.System);
            },
        });
        await rig.Machine.HomeAsync(new HomeRequest(), deadline: DateTime.UtcNow.Add(BenchRig.Timeout));
        return (rig, gantry, frames!, profile);
    }

    private static async Task<Session> RunSessionAsync(BenchRig rig, Plan plan, TimeSpan timeout)
    {
        var session = await rig.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        await rig.Sessions.StartAsync(new SessionRef { SessionId = session.Id, CalibrationOverride = TruthMounting });
        return await rig.WaitAsync(session.Id, s => s.State is not (SessionState.Running or SessionState.Pausing or SessionState.Created), mustKeepRunning: false, timeout);
    }

    private static async Task<Dictionary<string, object>> PlacementAsync(int dots)
    {
        await Console.Error.WriteLineAsync($"tracking: a {dots}-dot session with breathing sway at time scale 1");
#pragma warning disable CA2000 // StartAsync hands it to the synthetic frame source that disposes it, which the rig owns
        var scene = new SyntheticScene(SyntheticScenario.Sway, CameraIntrinsics.Synthetic());
#pragma warning restore CA2000
        var (rig, gantry, frames, profile) = await StartAsync(scene);
        await using var _ = rig;
        var plan = DemoPlanGenerator.Generate(dots, seed: 5);
        var done = await RunSessionAsync(rig, plan, TimeSpan.FromSeconds(30 + (dots * 10)));
        var byId = plan.Dots.ToDictionary(d => d.Id);
        var commanded = rig.Services.GetRequiredService<LedgerStore>().LoadDots(done.Id)
            .Where(d => d.TargetMm is not null)
            .Select(d => new CommandedDot(d.Dot.DotId, d.TargetMm!.Value, new Vec3(byId[d.Dot.DotId].XMm, byId[d.Dot.DotId].YMm, byId[d.Dot.DotId].ZMm), d.Dot.DepthMm));
        var gantryFromCamera = profile.Tracking.GantryFromCamera!.ToTransform();
        var errors = PlacementAudit.Evaluate(gantry.MotionRecord, commanded.ToList(),
            sim => gantryFromCamera * scene.TruthAt(frames.Inner.SceneSecondsAt(gantry.TimestampAt(sim))));
        var mm = errors.Select(e => e.ErrorMm).ToList();
        var lateral = errors.Select(e => e.LateralErrorMm).ToList();
        var depth = errors.Select(e => Math.Abs(e.DepthErrorMm)).ToList();
        return new Dictionary<string, object>
        {
            ["placementP95Mm"] = Stats.Round(Stats.Percentile(mm, 95), 3),
            ["placementMedianMm"] = Stats.Round(Stats.Median(mm), 3),
            ["placementMaxMm"] = Stats.Round(mm.Max(), 3),
            ["placementLateralP95Mm"] = Stats.Round(Stats.Percentile(lateral, 95), 3),
            // The depth reached below the (plan's flat) skin along its normal, against the planned depth.
            ["placementDepthErrorP95Mm"] = Stats.Round(Stats.Percentile(depth, 95), 3),
            ["placementDots"] = errors.Count,
            ["placementSession"] = $"{done.State}: {done.Dots.Placed} placed, {done.Dots.InDoubt} in doubt of {dots}; {done.Tracking.Holds} holds; {done.ElapsedSeconds:0.0} s vs {done.KinematicSeconds:0.0} s kinematic",
            // Issue #10's goal: the tracked session within 1.10x its kinematic time (a still head runs at about 1.04x).
            ["trackedOverKinematic"] = Stats.Round(done.ElapsedSeconds / done.KinematicSeconds, 3),
            ["trackedOverKinematicGoal"] = 1.10,
        };
    }

    private static async Task<Dictionary<string, object>> JerkAsync(int dots)
    {
        await Console.Error.WriteLineAsync($"tracking: a {dots}-dot session with a 5 mm jerk every 4 s at time scale 1");
#pragma warning disable CA2000 // StartAsync hands it to the synthetic frame source that disposes it, which the rig owns
        var scene = new SyntheticScene(SyntheticScenario.Jerk, CameraIntrinsics.Synthetic()) { JerkAtSeconds = 1e6, JerkRepeatSeconds = 4 };
#pragma warning restore CA2000
        var (rig, gantry, frames, _) = await StartAsync(scene);
        await using var __ = rig;
        var plan = DemoPlanGenerator.Generate(dots, seed: 9);
        var session = await rig.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan });
        await rig.Sessions.StartAsync(new SessionRef { SessionId = session.Id, CalibrationOverride = TruthMounting });
        var clock = TimeProvider.System;
        scene.JerkAtSeconds = frames.Inner.SceneSecondsAt(clock.GetTimestamp()) + 2;
        var done = await rig.WaitAsync(session.Id, s => s.State is not (SessionState.Running or SessionState.Pausing), mustKeepRunning: false, TimeSpan.FromSeconds(30 + (dots * 10)));
        var endScene = frames.Inner.SceneSecondsAt(clock.GetTimestamp());
        var captured = frames.Captured;
        var holds = gantry.RealtimeLog.Where(b => b.Command == (byte)'!').Select(b => b.Timestamp).ToList();
        var reactions = new List<double>();
        var unarmed = 0;
        foreach (var jerkS in scene.JerkTimes(endScene))
        {
            // The first frame captured after the jerk began shows it (the move takes 20 ms).
            var jerkTs = frames.Inner.StartTimestamp + (long)(jerkS * clock.TimestampFrequency);
            var first = captured.FirstOrDefault(t => t > jerkTs);
            if (first == 0) continue;
            var hold = holds.FirstOrDefault(t => t >= first && clock.GetElapsedTime(first, t) < TimeSpan.FromSeconds(0.5));
            if (hold == 0)
            {
                unarmed++; // the needle was already up (a hold in progress): nothing to stop
                continue;
            }
            reactions.Add(clock.GetElapsedTime(first, hold).TotalMilliseconds);
        }
        return new Dictionary<string, object>
        {
            ["jerkReactionMs"] = reactions.Count > 0 ? Stats.Round(Stats.Median(reactions)) : double.NaN,
            ["jerkReactionP99Ms"] = reactions.Count > 0 ? Stats.Round(Stats.Percentile(reactions, 99)) : double.NaN,
            ["jerkReactionMaxMs"] = reactions.Count > 0 ? Stats.Round(reactions.Max()) : double.NaN,
            ["jerkReactionGoalMs"] = Stats.Round((1000.0 / 30) + 10),
            ["jerks"] = reactions.Count,
            ["jerksWithNeedleAlreadyUp"] = unarmed,
            ["jerkSession"] = $"{done.State}: {done.Dots.Placed} placed, {done.Dots.InDoubt} in doubt of {dots}; {done.Tracking.Holds} holds, {done.Tracking.Retracts} retracts",
        };
    }
}
