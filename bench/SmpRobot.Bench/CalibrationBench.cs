using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Bench;

/// <summary>
/// Calibration through the real controller and its CalibrationService on the simulator at time scale
/// 1 (real speed): intrinsics from 40 rendered views (the default) of the synthetic camera (RMS reprojection error),
/// then the whole 25-stop camera-to-gantry calibration with the synthetic gantry-marker camera, whose
/// true mounting differs from the profile's nominal one by (1.2, −0.8, 0.6) mm and 0.5°.
/// tgcErrorMm is the largest distance between the recovered and the true T_GC over the corners of the
/// camera-frame box spanned by the calibration volume (extended 10 mm down to the skin); seconds25Points
/// is the wall time of the CalibrateGantry call (stops, settle, frames, touch-offs, fit, pictures).
/// </summary>
internal static class CalibrationBench
{
    public static async Task<Dictionary<string, object>> RunAsync()
    {
        var profilePath = BenchRig.ProfilePath("sim");
        var profile = MachineProfile.Load(profilePath);
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 1 });
        var truth = GantryMarkerTruth.Default(profile.Tracking.GantryFromCamera!.ToTransform());
        SimulatedGantryMarkerCamera? camera = null;
        var data = Directory.CreateTempSubdirectory("smp-bench-calibration-");
        try
        {
            await using var rig = await BenchRig.StartAsync(new ControllerOptions
            {
                ProfilePath = profilePath,
                DataDirectory = data.FullName,
                Simulator = simulator,
                CalibrationCamera = _ => camera = new SimulatedGantryMarkerCamera(() => simulator.Position, truth,
                    MarkerBoard.Load(Path.Combine(HardwarePaths.HardwareDirectory(), profile.Tracking.CalibrationBoard)),
                    MarkerBoard.Load(Path.Combine(HardwarePaths.HardwareDirectory(), profile.Tracking.IntrinsicsBoard)), null, TimeProvider.System),
            });
            var deadline = DateTime.UtcNow.AddMinutes(10);
            await Console.Error.WriteLineAsync("calibration: homing (time scale 1)");
            await rig.Machine.HomeAsync(new HomeRequest(), deadline: deadline);

            await Console.Error.WriteLineAsync("calibration: intrinsics from 40 synthetic views (the default)");
            var intrinsics = await rig.Calibration.CalibrateIntrinsicsAsync(new CalibrateIntrinsicsRequest { Camera = "synthetic" }, deadline: deadline);
            var trueK = CameraIntrinsics.Synthetic();

            await Console.Error.WriteLineAsync("calibration: gantry, 25 stops at 2 heights (time scale 1)");
            var start = TimeProvider.System.GetTimestamp();
            var gantry = await rig.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 25, Heights = 2 }, deadline: deadline);
            var seconds = TimeProvider.System.GetElapsedTime(start).TotalSeconds;
            var m = gantry.GantryFromCamera;
            var found = Rotations.FromMatrix([.. m.Rotation], new Vec3(m.TranslationMm.XMm, m.TranslationMm.YMm, m.TranslationMm.ZMm));
            var tip = new Vec3(gantry.TipInMarkerMm.XMm, gantry.TipInMarkerMm.YMm, gantry.TipInMarkerMm.ZMm);

            await Console.Error.WriteLineAsync("calibration: drift checks (true camera, then moved 0.5 mm)");
            var same = await rig.Calibration.CheckDriftAsync(new CheckDriftRequest { ToleranceMm = 0.1 }, deadline: deadline);
            camera!.Truth = truth.WithCameraMovedBy(new Vec3(0.5, 0, 0));
            var moved = await rig.Calibration.CheckDriftAsync(new CheckDriftRequest { ToleranceMm = 0.1 }, deadline: deadline);
            return new Dictionary<string, object>
            {
                ["intrinsicsRmsPx"] = Stats.Round(intrinsics.RmsPx, 4),
                ["intrinsicsFxErrorPx"] = Stats.Round(intrinsics.FxPx - trueK.FxPx, 3),
                ["tgcErrorMm"] = Stats.Round(MaxMappingErrorMm(found, truth.GantryFromCamera, profile.Tracking.CalibrationVolume!), 4),
                ["tgcErrorDeg"] = Stats.Round(Rotations.AngleBetweenDeg(found, truth.GantryFromCamera), 4),
                ["tipOffsetErrorMm"] = Stats.Round(tip.DistanceTo(truth.TipInMarkerMm), 4),
                ["validationRmsMm"] = Stats.Round(gantry.Validation.Rms, 4),
                ["validationP95Mm"] = Stats.Round(gantry.Validation.P95, 4),
                ["validationR63Mm"] = Stats.Round(gantry.Validation.R63, 4),
                ["validationR98Mm"] = Stats.Round(gantry.Validation.R98, 4),
                ["outliers"] = gantry.Outliers.Count,
                ["seconds25Points"] = Stats.Round(seconds, 2),
                ["driftCheckTrueCameraPassed"] = same.Passed,
                ["driftCheckMovedCameraPassed"] = moved.Passed,
                ["driftCheckMovedMaxMm"] = Stats.Round(moved.Stats.Max, 3),
                ["note"] = "simulator at time scale 1; synthetic camera 1280x720 with distortion and noise; T_GC truth = nominal + (1.2,-0.8,0.6) mm, 0.5 deg",
            };
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    /// <summary>Recovered vs true mapping over the calibration volume extended 10 mm down towards the skin, mm.</summary>
    private static double MaxMappingErrorMm(RigidTransform found, RigidTransform truth, CalibrationVolume v) =>
        RigidFit.MaxMappingDifferenceMm(found, truth, v.Min with { Z = v.Min.Z - 10 }, v.Max);
}
