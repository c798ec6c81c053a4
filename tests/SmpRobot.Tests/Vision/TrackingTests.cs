using Microsoft.Extensions.Time.Testing;
using OpenCvSharp;
using SmpRobot.Geometry;
using SmpRobot.Vision;
using static SmpRobot.Tests.Vision.VisionTestSupport;

namespace SmpRobot.Tests.Vision;

public sealed class TrackingTests
{
    private static readonly CameraIntrinsics K720 = CameraIntrinsics.Synthetic(1280, 720);

    [Fact]
    public void Still_head_at_720p_is_tracked_to_a_twentieth_of_a_millimetre()
    {
        var clock = new FakeTimeProvider();
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        using var tracker = new HeadTracker(scene.Board, K720, clock);
        var translationErrors = new List<double>();
        var rotationErrors = new List<double>();
        var speeds = new List<double>();
        for (var i = 0; i < 12; i++)
        {
            var t = i / 30.0;
            using var image = scene.Render(t, i);
            var result = tracker.Process(image, Stamp(clock, t));
            Assert.NotNull(result.Raw);
            Assert.True(result.Raw.ReprojectionErrorPx < 0.5, $"reprojection {result.Raw.ReprojectionErrorPx} px");
            Assert.Equal(10, result.Raw.MarkersSeen);
            Assert.True(result.Raw.Quality > 0.9);
            var truth = scene.TruthAt(t);
            translationErrors.Add(result.Raw.CameraFromHead.Translation.DistanceTo(truth.Translation));
            rotationErrors.Add(Rotations.AngleBetweenDeg(result.Raw.CameraFromHead, truth));
            speeds.Add(result.Filtered!.HeadSpeedMmPerS);
        }
        Assert.True(Rms(translationErrors) <= 0.05, $"translation RMS {Rms(translationErrors):0.0000} mm");
        Assert.True(Rms(rotationErrors) <= 0.15, $"rotation RMS {Rms(rotationErrors):0.000} deg");
        Assert.True(speeds.Max() < 1.0, $"still head reported at {speeds.Max():0.00} mm/s");
        Assert.Equal(new TrackingSearchCounts(11, 0, 1), tracker.SearchCounts);
    }

    [Fact]
    public void Filter_speed_follows_breathing_sway()
    {
        var clock = new FakeTimeProvider();
        using var scene = new SyntheticScene(SyntheticScenario.Sway, K720);
        using var tracker = new HeadTracker(scene.Board, scene.Intrinsics, clock);
        var speedErrors = new List<double>();
        var positionErrors = new List<double>();
        var maxTrue = 0.0;
        // Two seconds from the peak of the sway (t=0) through its turning point (t=1 s) and back.
        for (var i = 0; i < 60; i += 2)
        {
            var t = i / 30.0;
            using var image = scene.Render(t, i);
            var result = tracker.Process(image, Stamp(clock, t));
            Assert.NotNull(result.Raw);
            if (i < 10) continue; // let the filter settle
            var trueSpeed = TrueSpeed(scene, t);
            maxTrue = Math.Max(maxTrue, trueSpeed);
            speedErrors.Add(result.Filtered!.HeadSpeedMmPerS - trueSpeed);
            positionErrors.Add(result.Filtered.CameraFromHead.Translation.DistanceTo(scene.TruthAt(t).Translation));
        }
        Assert.True(maxTrue > 3, "the scenario must actually sway");
        Assert.True(Rms(speedErrors) < 1.5, $"speed RMS error {Rms(speedErrors):0.00} mm/s");
        Assert.True(Rms(positionErrors) < 0.15, $"filtered position RMS {Rms(positionErrors):0.000} mm");
    }

    [Fact]
    public void A_sudden_jerk_shows_as_speed_within_two_frames()
    {
        var clock = new FakeTimeProvider();
        using var scene = new SyntheticScene(SyntheticScenario.Jerk, CameraIntrinsics.Synthetic(640, 360));
        using var tracker = new HeadTracker(scene.Board, scene.Intrinsics, clock);
        var firstFast = -1;
        for (var i = 0; i < 14; i++)
        {
            var t = 0.8 + (i / 30.0);
            using var image = scene.Render(t, i);
            var speed = tracker.Process(image, Stamp(clock, t)).Filtered!.HeadSpeedMmPerS;
            if (t < 1.0)
            {
                Assert.True(speed < 5, $"still head before the jerk reported at {speed:0.0} mm/s");
            }
            else if (firstFast < 0 && speed > 5)
            {
                firstFast = i;
            }
        }
        var firstAfter = (int)Math.Ceiling((1.0 - 0.8) * 30);
        Assert.InRange(firstFast, firstAfter, firstAfter + 1);
        Assert.True(tracker.JerkCount >= 1);
    }

    [Fact]
    public void Pose_source_reports_gantry_pose_and_quality_zero_when_the_board_is_lost()
    {
        var clock = new FakeTimeProvider();
        var gantryFromCamera = Rotations.FromRotationVector(new Vec3(Math.PI, 0, 0.1), new Vec3(100, 100, 130));
        var frames = FrameSources.Parse("synthetic:lost", clock);
        var scene = ((SyntheticFrameSource)frames).Scene;
        using var board = MarkerBoard.DefaultHeadBoard();
        using var source = new TrackedHeadPoseSource(frames, board, gantryFromCamera, clock);
        Assert.StartsWith("tracked:synthetic:lost", source.Description, StringComparison.Ordinal);
        Assert.Null(source.Latest());

        var start = clock.GetTimestamp();
        for (var i = 0; i < 6; i++)
        {
            Assert.NotNull(source.ProcessNextFrame()!.Raw);
            clock.Advance(TimeSpan.FromMilliseconds(50));
        }
        var seen = source.Latest()!;
        Assert.True(seen.Quality > 0.9);
        Assert.True(seen.HeadSpeedMmPerS < 1.0);
        // T_GH = T_GC · T_CH: a plan dot lands where the true pose puts it.
        var dot = new Vec3(3, -2, 0.5);
        var truth = scene.TruthAt(clock.GetElapsedTime(start).TotalSeconds);
        Assert.True(seen.GantryFromHead.Apply(dot).DistanceTo(gantryFromCamera.Apply(truth.Apply(dot))) < 0.15);

        clock.Advance(TimeSpan.FromMilliseconds(300)); // past 0.5 s: the hand covers the board
        var lost = source.ProcessNextFrame()!;
        Assert.Null(lost.Raw);
        var sample = source.Latest()!;
        Assert.Equal(0.0, sample.Quality);
        Assert.True(clock.GetElapsedTime(sample.CapturedTimestamp) == TimeSpan.Zero);
    }

    [Fact]
    public void Partly_occluded_board_still_gives_a_pose_from_fewer_markers()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Occlusion, K720);
        using var estimator = new BoardPoseEstimator(scene.Board, K720);
        using var image = scene.Render(0.6, 0);
        var pose = estimator.Estimate(image, 0);
        Assert.NotNull(pose);
        Assert.InRange(pose.MarkersSeen, 4, 9);
        Assert.True(pose.Quality is > 0.5 and < 0.95, $"quality {pose.Quality:0.00}");
        Assert.True(pose.CameraFromHead.Translation.DistanceTo(scene.TruthAt(0.6).Translation) < 0.15);
    }

    [Fact]
    public void Preview_png_shows_the_frame_with_markers_and_axes()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        using var estimator = new BoardPoseEstimator(scene.Board, K720);
        using var frame = scene.Render(0, 0);
        var pose = estimator.Estimate(frame, 0);
        var dir = Directory.CreateTempSubdirectory("smp-vision-preview-");
        try
        {
            var path = Path.Combine(dir.FullName, "preview.png");
            TrackingPreview.WritePng(path, frame, estimator.LastDetection, pose, K720);
            using var png = Cv2.ImRead(path, ImreadModes.Color);
            Assert.False(png.Empty());
            Assert.Equal(frame.Size(), png.Size());
            // Drawing changed the picture at the head origin (the axes start there).
            var origin = K720.Project(pose!.CameraFromHead.Translation);
            using var before = new Mat(frame, new Rect((int)origin.X - 3, (int)origin.Y - 3, 7, 7));
            using var after = new Mat(png, new Rect((int)origin.X - 3, (int)origin.Y - 3, 7, 7));
            Assert.True(Cv2.Norm(before, after, NormTypes.L1) > 100);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Tracking_follows_the_corners_and_gives_the_pose_a_full_search_gives()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Sway, K720);
        using var tracking = new BoardPoseEstimator(scene.Board, K720);
        using var searching = new BoardPoseEstimator(scene.Board, K720, new BoardPoseOptions { TrackInRegion = false });
        for (var i = 0; i < 24; i++)
        {
            var t = i / 30.0;
            using var image = scene.Render(t, i);
            var tracked = tracking.Estimate(image, Stamp(TimeProvider.System, t));
            var searched = searching.Estimate(image, Stamp(TimeProvider.System, t));
            Assert.NotNull(tracked);
            Assert.NotNull(searched);
            Assert.Equal(searched.MarkersSeen, tracked.MarkersSeen);
            Assert.Equal(searched.ReprojectionErrorPx, tracked.ReprojectionErrorPx, 3);
            var apart = tracked.CameraFromHead.Translation.DistanceTo(searched.CameraFromHead.Translation);
            Assert.True(apart < 0.002, $"frame {i}: tracked and searched poses {apart:0.0000} mm apart");
            Assert.True(Rotations.AngleBetweenDeg(tracked.CameraFromHead, searched.CameraFromHead) < 0.01);
        }
        Assert.Equal(1, tracking.FullFrameSearches);
        Assert.Equal(23, tracking.CornerFollows);
        Assert.Equal(24, searching.FullFrameSearches);
        Assert.Equal(0, searching.CornerFollows);
    }

    [Fact]
    public void A_board_moved_by_exactly_one_square_is_not_taken_for_the_board_in_place()
    {
        // The chessboard repeats: corners followed from the old pose land on the neighbouring
        // corners. Reading the markers must refuse that, and a search must find where the board went.
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        using var estimator = new BoardPoseEstimator(scene.Board, K720);
        TrackedPose? pose = null;
        for (var i = 0; i < 3; i++)
        {
            using var image = scene.Render(i / 30.0, i);
            pose = estimator.Estimate(image, Stamp(TimeProvider.System, i / 30.0));
        }
        Assert.NotNull(pose);
        Assert.Equal(2, estimator.CornerFollows);
        var origin = K720.Project(pose.CameraFromHead.Translation);
        var squareOver = K720.Project(pose.CameraFromHead.Apply(new Vec3(scene.Board.Spec.SquareMm, 0, 0)));
        double dx = squareOver.X - origin.X, dy = squareOver.Y - origin.Y;

        using var still = scene.Render(3 / 30.0, 3);
        using var shift = new Mat(2, 3, MatType.CV_64FC1, Scalar.All(0));
        shift.Set(0, 0, 1.0);
        shift.Set(1, 1, 1.0);
        shift.Set(0, 2, dx);
        shift.Set(1, 2, dy);
        using var moved = new Mat();
        Cv2.WarpAffine(still, moved, shift, still.Size(), InterpolationFlags.Linear, BorderTypes.Replicate);
        var after = estimator.Estimate(moved, Stamp(TimeProvider.System, 3 / 30.0));

        Assert.NotNull(after);
        Assert.Equal(2, estimator.CornerFollows); // the followed corners were refused
        Assert.Equal(10, after.MarkersSeen);
        var newOrigin = K720.Project(after.CameraFromHead.Translation);
        Assert.InRange(newOrigin.X - origin.X, dx - 2, dx + 2);
        Assert.InRange(newOrigin.Y - origin.Y, dy - 2, dy + 2);
    }

    [Fact]
    public void A_jerk_too_fast_to_follow_is_found_by_a_search_and_every_frame_keeps_its_pose()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Jerk, K720);
        using var estimator = new BoardPoseEstimator(scene.Board, K720);
        for (var i = 0; i < 12; i++)
        {
            var t = 0.85 + (i / 30.0);
            using var image = scene.Render(t, i);
            var pose = estimator.Estimate(image, Stamp(TimeProvider.System, t));
            Assert.NotNull(pose);
            var error = pose.CameraFromHead.Translation.DistanceTo(scene.TruthAt(t).Translation);
            Assert.True(error < 0.1, $"t = {t:0.000} s: {error:0.000} mm from the truth");
        }
        Assert.True(estimator.RegionSearches + estimator.FullFrameSearches >= 2, "the 5 mm jump must have needed a search");
        Assert.True(estimator.CornerFollows >= 8);
    }

    [Fact]
    public void A_hidden_board_gives_no_pose_while_tracking()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Lost, K720);
        using var estimator = new BoardPoseEstimator(scene.Board, K720);
        for (var i = 0; i < 20; i++)
        {
            var t = 0.3 + (i / 30.0);
            using var image = scene.Render(t, i);
            var pose = estimator.Estimate(image, Stamp(TimeProvider.System, t));
            if (scene.BoardVisibleAt(t))
            {
                Assert.NotNull(pose);
            }
            else
            {
                Assert.Null(pose);
                Assert.True(estimator.LastSearchWasFullFrame);
            }
        }
        Assert.True(estimator.CornerFollows >= 4);
    }
}
