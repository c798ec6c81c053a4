using System.Diagnostics;
using SmpRobot.Controller;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Preview;
using SmpRobot.Treatment.Registration;
using SmpRobot.Vision;

namespace SmpRobot.Bench;

/// <summary>
/// ./build.sh bench treatment (issue #14, "finding the earlier session"): the Norwood VI design on the bundled synthetic
/// head; session 1's dots placed with a placement error (0.06 mm per axis along the skin, seeded) are the healed dots
/// that are really there. For each of <see cref="Trials"/> seeded trials the board sits elsewhere than in session 1:
/// slid 3–8 mm along the skin (a turn about the head's centre) and turned 2–5° about the vertex normal. The synthetic
/// camera (at rest, 110 mm) renders the skin around the board with the true healed dots and the texture's stubble; the
/// detector finds the dark spots; the registration starts from what probing leaves (session 1's T_HS fitted by
/// <see cref="SmpRobot.Treatment.Surface.SurfaceRegistration"/> to 16 contacts on the true skin: height and tilt found, the
/// slide along the skin not) and must find today's. "Treated area" is the session-1 dots in the camera's search region (the
/// skin ring around the board's sticker, about 60 × 50 mm of the crown): the registration error is the largest
/// displacement of those dots between the found and the true T_HS. Session 2's dots there are then checked against the
/// found dots (<see cref="FoundDotSpacing"/>), placed with the found T_HS and the same placement error, and measured
/// against the true session-1 dots. Negative checks: a different client's record (the same design, another seed) and
/// a covered scalp (no healed dots in view, only stubble) must be refused.
/// </summary>
internal static class TreatmentBench
{
    private const int Trials = 12;
    private const double PlacementSigmaMm = 0.06;

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        var profile = MachineProfile.Load(BenchRig.ProfilePath("sim"));
        var hardware = HardwarePaths.HardwareDirectory();
        var head = Google.Protobuf.JsonParser.Default.Parse<SmpRobot.Contracts.V1.HeadModel>(await File.ReadAllTextAsync(Path.Combine(hardware, "heads", "adult-synthetic.head.json")));
        var mesh = MeshReader.Read(Path.Combine(hardware, "heads", head.Mesh));
        head.Mesh = Path.Combine(hardware, "heads", head.Mesh);
        var dir = Directory.CreateTempSubdirectory("smp-bench-treatment-");
        var clock = Stopwatch.StartNew();
        var dots = await DesignDotsAsync(head, mesh, profile, dir.FullName, seed: 1);
        var otherClient = await DesignDotsAsync(head, mesh, profile, dir.FullName, seed: 2);
        await Console.Error.WriteLineAsync($"treatment: two Norwood VI designs in {clock.Elapsed.TotalSeconds:0.0} s ({dots.Dots.Count} and {otherClient.Dots.Count} dots)");
        var skin = dots.Design.Mesh;
        var nominal = DesignPlans.NominalHeadFromScalp(dots.Design);
        var centreH = nominal.Apply(dots.Design.Landmarks.Center);
        var session1 = dots.Dots.Where(d => d.Session == 1).ToList();
        var session2 = dots.Dots.Where(d => d.Session == 2).ToList();
        var record = session1.Select(d => new RecordedDot(d.Id, d.PointMm, d.Normal)).ToList();
        var wrongRecord = otherClient.Dots.Where(d => d.Session == 1).Select(d => new RecordedDot(d.Id, d.PointMm, d.Normal)).ToList();

#pragma warning disable CA5394 // seeded: the bench's placement errors and board positions are the same on every run; nothing here is secret
        var rng = new Random(14);
        // Session 1 as it healed: each dot off its planned place along the skin, back on the skin.
        var healed = session1.Select(d => OnSkin(skin, d.PointMm + Tangent(rng, d.Normal, PlacementSigmaMm))).ToList();
        var healedLook = session1.Select(d => (Diameter: Math.Clamp(d.DotDiameterMm * (0.8 + (0.4 * rng.NextDouble())), 0.2, 0.6), Darkness: 0.4 + (0.4 * rng.NextDouble()))).ToList();

        var intrinsics = CameraIntrinsics.Synthetic();
        var detector = new HealedDotDetector(intrinsics);
        var pose = SyntheticScene.RestCameraFromHead;
        var cameraH = Rotations.Inverse(pose).Translation;
        var errors = new List<double>();
        var trialsRun = 0;
        var initialErrors = new List<double>();
        var fractions = new List<double>();
        var rmss = new List<double>();
        var p95s = new List<double>();
        var founds = new List<double>();
        var registrationMs = new List<double>();
        var detectionMs = new List<double>();
        var spacingMins = new List<double>();
        var ambiguities = new List<double>();
        var treatedDots = new List<double>();
        var leftOut = 0;
        var checkedNew = 0;
        var refused = new List<string>();
        string? picture = null;
        bool refusedWrong = false, refusedCovered = false;
        string wrongReason = "", coveredReason = "";
        // SMP_BENCH_TREATMENT_TRIALS=3,5 runs only those (1-based) trials; each trial has its own seed.
        var only = Environment.GetEnvironmentVariable("SMP_BENCH_TREATMENT_TRIALS")?.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture) - 1).ToHashSet();
        for (var trial = 0; trial < Trials; trial++)
        {
            if (only is not null && !only.Contains(trial)) continue;
            var trialRng = new Random(1000 + trial);
            var slideMm = 3 + (5 * trialRng.NextDouble());
            var slideDirection = trialRng.NextDouble() * 2 * Math.PI;
            var twistDeg = (2 + (3 * trialRng.NextDouble())) * (trialRng.Next(2) == 0 ? -1 : 1);
            var truth = Slide(centreH, slideMm, slideDirection, twistDeg) * nominal;
            // What probing leaves: 16 contacts on the true skin around the board, the model fitted to them from session 1's
            // T_HS (SurfaceRegistration, as `smp surface probe` does); it finds height and tilt, not the slide along the skin.
            var scalpFromTruthH = Rotations.Inverse(truth);
            var contacts = new List<Vec3>();
            for (var gx = -1.5; gx <= 1.5; gx += 1)
            {
                for (var gy = -1.5; gy <= 1.5; gy += 1)
                {
                    var above = new Vec3(gx * 16, gy * 13, 30);
                    if (skin.Raycast(scalpFromTruthH.Apply(above), scalpFromTruthH.Apply(above - new Vec3(0, 0, 1)) - scalpFromTruthH.Apply(above)) is { } touched) contacts.Add(truth.Apply(touched.Point));
                }
            }
            var initial = SmpRobot.Treatment.Surface.SurfaceRegistration.Fit(skin, contacts, nominal).HeadFromScalp;

            using var scene = new SyntheticScene(SyntheticScenario.Still, intrinsics, seed: 100 + trial);
            var region = DotSearchRegion.ForScene(scene);
            var truthR = Rotations.RotationMatrix(truth);
            scene.HealedDots = healed.Select((p, i) => new HealedDot(truth.Apply(p), Rotate(truthR, session1[i].Normal), healedLook[i].Diameter, healedLook[i].Darkness)).ToList();
            bool InView(Vec3 pH, Vec3 nH)
            {
                if (!scene.HealedDotVisible(pose, new HealedDot(pH, nH, 0.3, 0.5)) || !region.Contains(cameraH, pH)) return false;
                var px = intrinsics.Project(pose.Apply(pH));
                return px.X >= 8 && px.Y >= 8 && px.X <= intrinsics.WidthPx - 9 && px.Y <= intrinsics.HeightPx - 9;
            }

            using var image = scene.RenderAt(pose, trial);
            var detectClock = Stopwatch.StartNew();
            var detected = detector.Detect(image, pose, region);
            detectClock.Stop();
            var observations = detected.Select(d => new DotObservation(d.OriginH, d.DirectionH, d.DiameterMm)).ToList();
            var result = DotRegistration.Register(record, observations, skin, initial, InView, skinContactsH: contacts);
            if (!result.Accepted) refused.Add($"trial {trial}: {result.RefusalReason}");

            // The treated area: the session-1 dots the camera sees under the true T_HS.
            var treated = Enumerable.Range(0, session1.Count).Where(i => InView(truth.Apply(healed[i]), Rotate(truthR, session1[i].Normal))).ToList();
            var error = treated.Max(i => result.HeadFromScalp.Apply(session1[i].PointMm).DistanceTo(truth.Apply(session1[i].PointMm)));
            errors.Add(error);
            trialsRun++;
            fractions.Add(result.MatchedFraction);
            rmss.Add(result.ResidualRmsMm);
            p95s.Add(result.ResidualP95Mm);
            founds.Add(result.DotsFound);
            registrationMs.Add(result.Elapsed.TotalMilliseconds);
            var initialError = treated.Max(i => initial.Apply(session1[i].PointMm).DistanceTo(truth.Apply(session1[i].PointMm)));
            initialErrors.Add(initialError);
            var searchError = result.SearchHeadFromScalp is { } searched ? treated.Max(i => searched.Apply(session1[i].PointMm).DistanceTo(truth.Apply(session1[i].PointMm))) : double.NaN;
            detectionMs.Add(detectClock.Elapsed.TotalMilliseconds);
            ambiguities.Add(result.Ambiguity);
            treatedDots.Add(treated.Count);

            // Session 2 in the treated area, checked against the dots found (measured where their rays meet the skin).
            var found = result.Pairs.Select(p => new FoundDot(p.RecordId, result.HeadFromScalp.Apply(p.ObservedS))).ToList();
            var planned = session2.Where(d => InView(result.HeadFromScalp.Apply(d.PointMm), Rotate(Rotations.RotationMatrix(result.HeadFromScalp), d.Normal))).ToList();
            var decisions = FoundDotSpacing.Check(planned, result.HeadFromScalp, found);
            leftOut += decisions.Count(d => !d.Keep);
            checkedNew += decisions.Count;
            var scalpFromTruth = Rotations.Inverse(truth);
            var ratio = double.PositiveInfinity;
            foreach (var decision in decisions.Where(d => d.Keep))
            {
                // Placed where the found T_HS puts it, off by today's placement error; where that is on the true scalp.
                var placedS = OnSkin(skin, scalpFromTruth.Apply(result.HeadFromScalp.Apply(decision.Dot.PointMm)) + Tangent(trialRng, decision.Dot.Normal, PlacementSigmaMm));
                var nearestOld = healed.Min(h => h.DistanceTo(placedS));
                ratio = Math.Min(ratio, nearestOld / decision.Dot.Region.MinSpacingMm);
            }
            spacingMins.Add(ratio);
            await Console.Error.WriteLineAsync(FormattableString.Invariant(
                $"treatment: trial {trial + 1}: board slid {slideMm:0.0} mm, turned {twistDeg:0.0}°; {detected.Count} spots ({detectClock.Elapsed.TotalMilliseconds:0} ms), {result.Matched} of {result.ExpectedInView} matched, error {error:0.000} mm over {treated.Count} dots (initial {initialError:0.00} mm, after the search {searchError:0.000} mm), RMS {result.ResidualRmsMm:0.000} mm, ambiguity {result.Ambiguity:0.00}, {result.Elapsed.TotalMilliseconds:0} ms, spacing ratio {ratio:0.00}, {(result.Accepted ? "accepted" : "REFUSED: " + result.RefusalReason)}"));
            if (picture is null)
            {
                picture = Path.Combine(Path.GetTempPath(), "smp-bench-treatment-registration.png");
                DotRegistrationPicture.WritePng(result, record, "treatment bench, trial 1: session 1's dots found by the camera", picture);
                Cv2Write(image, Path.Combine(Path.GetTempPath(), "smp-bench-treatment-frame.png"));
            }

            if (wrongReason.Length == 0)
            {
                // Negative checks on the same frame: another client's record, and the same scalp with no healed dots in view.
                var wrong = DotRegistration.Register(wrongRecord, observations, skin, initial, InView, skinContactsH: contacts);
                refusedWrong = !wrong.Accepted;
                wrongReason = wrong.RefusalReason ?? "accepted";
                scene.HealedDots = [];
                using var covered = scene.RenderAt(pose, trial);
                var bare = detector.Detect(covered, pose, region).Select(d => new DotObservation(d.OriginH, d.DirectionH, d.DiameterMm)).ToList();
                var none = DotRegistration.Register(record, bare, skin, initial, InView, skinContactsH: contacts);
                refusedCovered = !none.Accepted;
                coveredReason = none.RefusalReason ?? "accepted";
                await Console.Error.WriteLineAsync($"treatment: another client's record: {wrongReason}; a covered scalp ({bare.Count} spots, stubble only): {coveredReason}");
            }
        }
#pragma warning restore CA5394
        dir.Delete(recursive: true);
        await Console.Error.WriteLineAsync($"treatment: pictures {picture} and {Path.Combine(Path.GetTempPath(), "smp-bench-treatment-frame.png")}");
        return new Dictionary<string, object>
        {
            ["trials"] = trialsRun,
            ["probeContacts"] = "the same 16 contacts are kept on the skin model by the fit, as the controller does",
            ["initialTHs"] = "probing's: session 1's T_HS fitted to 16 contacts on the true skin (SurfaceRegistration.Fit); the board's slide along the skin (3-8 mm, turned 2-5 deg about the vertex normal) stays",
            ["initialErrorMedianMm"] = Stats.Round(Stats.Median(initialErrors), 2),
            ["initialErrorMaxMm"] = Stats.Round(initialErrors.Max(), 2),
            ["treatedArea"] = FormattableString.Invariant($"session-1 dots in the camera's search region (skin ring around the board's sticker, ~60x50 mm at the vertex): median {Stats.Median(treatedDots):0} dots"),
            ["registrationErrorMedianMm"] = Stats.Round(Stats.Median(errors), 4),
            ["registrationErrorP99Mm"] = Stats.Round(Stats.Percentile(errors, 99), 4),
            ["registrationErrorMaxMm"] = Stats.Round(errors.Max(), 4),
            ["registrationErrorGoalMm"] = 0.10,
            ["matchedFractionMedian"] = Stats.Round(Stats.Median(fractions)),
            ["matchedFractionMin"] = Stats.Round(fractions.Min()),
            ["matchedFractionGoal"] = 0.95,
            ["crossSessionMinSpacingRatioMedian"] = Stats.Round(Stats.Median(spacingMins)),
            ["crossSessionMinSpacingRatioMin"] = Stats.Round(spacingMins.Min()),
            ["crossSessionMinSpacingRatioGoal"] = 0.9,
            ["newDotsLeftOut"] = $"{leftOut} of {checkedNew}",
            ["residualRmsMedianMm"] = Stats.Round(Stats.Median(rmss), 4),
            ["residualP95MedianMm"] = Stats.Round(Stats.Median(p95s), 4),
            ["dotsFoundMedian"] = Stats.Median(founds),
            ["ambiguityMax"] = Stats.Round(ambiguities.Max()),
            ["registrationMsMedian"] = Stats.Round(Stats.Median(registrationMs), 1),
            ["registrationMsMax"] = Stats.Round(registrationMs.Max(), 1),
            ["detectionMsMedian"] = Stats.Round(Stats.Median(detectionMs), 1),
            ["accepted"] = $"{trialsRun - refused.Count} of {trialsRun}",
            ["refusals"] = refused.ToArray(),
            ["wrongClientRefused"] = refusedWrong,
            ["wrongClientReason"] = wrongReason,
            ["coveredScalpRefused"] = refusedCovered,
            ["coveredScalpReason"] = coveredReason,
        };
    }

    private static void Cv2Write(OpenCvSharp.Mat image, string path) => OpenCvSharp.Cv2.ImWrite(path, image);

    private static async Task<DesignDots> DesignDotsAsync(SmpRobot.Contracts.V1.HeadModel head, TriangleMesh mesh, MachineProfile profile, string dir, uint seed)
    {
        var path = Path.Combine(dir, $"norwood-6-{seed}.design.json");
        await File.WriteAllTextAsync(path, DesignLoader.Format(NorwoodPresets.Create(6, head, mesh, seed)));
        var check = DesignResolver.Resolve(DesignLoader.Load(path), profile);
        if (!check.IsValid) throw new InvalidOperationException("the Norwood VI preset does not check: " + string.Join("; ", check.Violations));
        return DesignPlanner.Generate(check.Design!);
    }

    /// <summary>The board slid along the skin: a turn about the head's centre (in H) carrying the vertex <paramref name="slideMm"/> towards <paramref name="directionRad"/>, and a turn about the vertex normal.</summary>
    private static RigidTransform Slide(Vec3 centreH, double slideMm, double directionRad, double twistDeg)
    {
        var radius = -centreH.Z;
        var axis = Vec3.Cross(new Vec3(0, 0, 1), new Vec3(Math.Cos(directionRad), Math.Sin(directionRad), 0));
        var turn = Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(0, 0, twistDeg * Math.PI / 180)), Rotations.MatrixFromVector(axis * (slideMm / radius)));
        // About the head's centre: p ↦ c + R(p − c).
        return Rotations.FromMatrix(turn, centreH - Rotate(turn, centreH));
    }

    private static Vec3 Rotate(double[] r, Vec3 v) => new(
        (r[0] * v.X) + (r[1] * v.Y) + (r[2] * v.Z),
        (r[3] * v.X) + (r[4] * v.Y) + (r[5] * v.Z),
        (r[6] * v.X) + (r[7] * v.Y) + (r[8] * v.Z));

    private static Vec3 OnSkin(TriangleMesh skin, Vec3 p) => skin.ClosestPoint(p, 5)?.Point ?? p;

#pragma warning disable CA5394 // seeded on purpose (see RunAsync)
    private static Vec3 Tangent(Random rng, Vec3 normal, double sigmaMm)
    {
        var e1 = Vec3.Cross(normal, Math.Abs(normal.X) < 0.9 ? new Vec3(1, 0, 0) : new Vec3(0, 1, 0)).Normalized();
        var e2 = Vec3.Cross(normal, e1);
        return (e1 * (Gaussian(rng) * sigmaMm)) + (e2 * (Gaussian(rng) * sigmaMm));
    }

    private static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
#pragma warning restore CA5394
}
