using OpenCvSharp;
using OpenCvSharp.Aruco;
using SmpRobot.Geometry;
using SmpRobot.Vision;
using SmpRobot.Vision.BoardPose;

namespace SmpRobot.Tests.Vision;

/// <summary>The pieces of <see cref="BoardPoseEstimator"/> on their own, on synthetic frames with ground truth (scene seed 1).</summary>
public sealed class BoardPosePartsTests
{
    private static readonly CameraIntrinsics K720 = CameraIntrinsics.Synthetic(1280, 720);

    // A pinhole camera without distortion, for figures that can be worked out by hand.
    private static readonly CameraIntrinsics Pinhole = new(1280, 720, 1400, 1400, 640, 360, [0, 0, 0, 0, 0]);

    // Facing the board square on at 100 mm: H's x along C's x, H's y and z against C's.
    private static readonly RigidTransform Facing100 = new(1, 0, 0, 0, -1, 0, 0, 0, -1, new Vec3(0, 0, 100));

    private static RigidTransform Moved(RigidTransform cameraFromHead, Vec3 inHeadMm) =>
        cameraFromHead * Rotations.FromRotationVector(Vec3.Zero, inHeadMm);

    [Fact]
    public void Layout_puts_every_marker_where_OpenCV_draws_it()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var layout = new BoardLayout(board);
        const double pxPerMm = 20;
        using var page = board.Render(pxPerMm);
        using var detector = new ArucoDetector(board.Dictionary, new DetectorParameters { CornerRefinementMethod = CornerRefineMethod.Subpix }, new RefineParameters());
        detector.DetectMarkers(page, out var corners, out var ids, out _);

        Assert.Equal(Enumerable.Range(0, layout.MarkerCount), ids.Order());
        for (var i = 0; i < ids.Length; i++)
        {
            for (var k = 0; k < 4; k++)
            {
                // H (centred, y up) to page pixels (top-left, y down; pixel centres at +0.5).
                var h = layout.MarkerCornerH(ids[i], k);
                var x = ((h.X + (board.WidthMm / 2)) * pxPerMm) - 0.5;
                var y = (((board.HeightMm / 2) - h.Y) * pxPerMm) - 0.5;
                Assert.InRange(corners[i][k].X, x - 1, x + 1);
                Assert.InRange(corners[i][k].Y, y - 1, y + 1);
            }
        }
    }

    [Fact]
    public void Layout_knows_the_two_markers_beside_each_corner_and_each_markers_cells()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var layout = new BoardLayout(board);
        Assert.Equal(6, layout.CellsPerSide); // 4×4 bits inside a one-cell border
        for (var m = 0; m < layout.MarkerCount; m++)
        {
            var cells = layout.MarkerCells(m);
            Assert.Equal(36, cells.Length);
            for (var i = 0; i < 6; i++)
            {
                Assert.False(cells[i]);              // top row: border
                Assert.False(cells[30 + i]);         // bottom row
                Assert.False(cells[i * 6]);          // left column
                Assert.False(cells[(i * 6) + 5]);    // right column
            }
        }
        for (var c = 0; c < board.CornerCount; c++)
        {
            // Every inner corner of a 5×4 ChArUco board touches two white squares, diagonally opposite: two
            // markers, their centres half a square's diagonal away.
            var (a, b) = layout.MarkersBesideCorner(c);
            Assert.NotEqual(a, b);
            foreach (var m in new[] { a, b })
            {
                var centre = (layout.MarkerCornerH(m, 0) + layout.MarkerCornerH(m, 2)) * 0.5;
                Assert.Equal(board.Spec.SquareMm / Math.Sqrt(2), (centre - board.CornerInHead(c)).Length, 9);
            }
        }
    }

    [Fact]
    public void Projected_marker_sizes_and_board_bounds_are_as_worked_out_by_hand()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var layout = new BoardLayout(board);

        // 4.5 mm at 100 mm with f = 1400 px: 63 px a side.
        var sizes = layout.MarkerSizesPx(Facing100, Pinhole);
        Assert.Equal(63, sizes.MeanSidePx, 9);
        Assert.Equal(252, sizes.MinPerimeterPx, 9);
        Assert.Equal(252, sizes.MaxPerimeterPx, 9);
        // Tilted, the near markers look bigger than the far ones.
        var tilted = layout.MarkerSizesPx(Facing100 * Rotations.FromRotationVector(new Vec3(0, 0.5, 0), Vec3.Zero), Pinhole);
        Assert.True(tilted.MaxPerimeterPx > tilted.MinPerimeterPx * 1.05);

        // 30 × 24 mm board: 420 × 336 px around (640, 360), plus 10 % of 420 and 2 px a side.
        var bounds = layout.BoundsPx(Facing100, Pinhole, new Size(1280, 720), 0.1, 2)!.Value;
        Assert.InRange(bounds.Left, 640 - 210 - 44 - 1, 640 - 210 - 44);
        Assert.InRange(bounds.Top, 360 - 168 - 44 - 1, 360 - 168 - 44);
        Assert.InRange(bounds.Right, 640 + 210 + 44, 640 + 210 + 44 + 1);
        Assert.InRange(bounds.Bottom, 360 + 168 + 44, 360 + 168 + 44 + 1);
        // Clipped to the image, null behind the camera or when too small to search.
        Assert.Equal(new Rect(0, 0, 1280, 720), layout.BoundsPx(Facing100, Pinhole, new Size(1280, 720), 2, 0));
        Assert.Null(layout.BoundsPx(new RigidTransform(1, 0, 0, 0, -1, 0, 0, 0, -1, new Vec3(0, 0, -100)), Pinhole, new Size(1280, 720), 0, 0));
        Assert.Null(layout.BoundsPx(Moved(Facing100, new Vec3(0, 0, -2000)), Pinhole, new Size(1280, 720), 0, 0));
    }

    [Fact]
    public void Grey_region_reads_pixels_between_pixel_centres_and_nothing_outside()
    {
        // A plane of grey, 10 a column and 3 a row: bilinear reads it exactly.
        using var bgr = new Mat(6, 8, MatType.CV_8UC3);
        for (var y = 0; y < 6; y++)
        {
            for (var x = 0; x < 8; x++)
            {
                var v = (byte)((10 * x) + (3 * y));
                bgr.Set(y, x, new Vec3b(v, v, v));
            }
        }
        using var region = new GreyRegion();
        region.Load(bgr, new Rect(2, 1, 5, 4));
        Assert.Equal(new Rect(2, 1, 5, 4), region.Region);
        Assert.Equal(new Size(5, 4), region.Gray.Size());
        Assert.Equal(41.75, region.Bilinear(3.5, 2.25), 9);
        Assert.Equal(23, region.Bilinear(2, 1), 9);
        // The last column and row of the region cannot be interpolated into; outside is NaN.
        Assert.True(double.IsNaN(region.Bilinear(6, 2)));
        Assert.True(double.IsNaN(region.Bilinear(3, 4)));
        Assert.True(double.IsNaN(region.Bilinear(1.9, 2)));
        Assert.Equal(69.5, region.Bilinear(5.9, 3.5), 9);
    }

    [Fact]
    public void Pose_solver_recovers_the_pose_of_exact_corners_and_refuses_what_it_cannot_trust()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var solver = new PoseSolver(board, K720, new BoardPoseOptions());
        var truth = SyntheticScene.RestCameraFromHead;
        var all = Enumerable.Range(0, board.CornerCount).ToArray();
        BoardDetection Corners(int[] ids, Func<int, Point2f, Point2f>? shift = null) => new(
            [.. Enumerable.Range(0, board.MarkerCount).Select(_ => new Point2f[4])],
            [.. Enumerable.Range(0, board.MarkerCount)],
            [.. ids.Select(id =>
            {
                var p = K720.Project(truth.Apply(board.CornerInHead(id)));
                var q = new Point2f((float)p.X, (float)p.Y);
                return shift is null ? q : shift(id, q);
            })],
            ids);

        var pose = solver.Solve(Corners(all), 42);
        Assert.NotNull(pose);
        Assert.True(pose.CameraFromHead.Translation.DistanceTo(truth.Translation) < 0.001);
        Assert.True(Rotations.AngleBetweenDeg(pose.CameraFromHead, truth) < 0.001);
        Assert.True(pose.ReprojectionErrorPx < 0.01);
        Assert.Equal(42, pose.CapturedTimestamp);
        Assert.Equal(board.MarkerCount, pose.MarkersSeen);
        Assert.True(pose.Quality > 0.99);

        // From a start pose, the same answer.
        var fromGuess = solver.Solve(Corners(all), 42, Moved(truth, new Vec3(0.5, -0.3, 0.2)));
        Assert.NotNull(fromGuess);
        Assert.True(fromGuess.CameraFromHead.Translation.DistanceTo(truth.Translation) < 0.001);

        // Half the corners: coverage counts in the quality.
        var half = solver.Solve(Corners([0, 1, 4, 5, 8, 9]), 0);
        Assert.NotNull(half);
        Assert.InRange(half.Quality, Math.Sqrt(0.5) - 0.01, Math.Sqrt(0.5));

        Assert.Null(solver.Solve(Corners([0, 1, 2]), 0));          // too few
        Assert.Null(solver.Solve(Corners([0, 1, 2, 3]), 0));       // one row: on a line
        Assert.Null(solver.Solve(Corners(all, (id, p) => id == 5 ? new Point2f(p.X + 25, p.Y) : p), 0)); // reprojection above 2 px
        Assert.Null(solver.Solve(Corners([0, 1, 4, 5, 8]) with { CharucoIds = [0, 1, 4, 5, 99] }, 0)); // not a corner of this board
    }

    [Fact]
    public void Marker_reader_confirms_every_marker_in_place_and_none_a_square_over()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        var layout = new BoardLayout(scene.Board);
        var reader = new MarkerReader(layout, K720);
        using var image = scene.Render(0, 0);
        var truth = scene.TruthAt(0);
        using var frame = new GreyRegion();
        frame.Load(image, layout.BoundsPx(truth, K720, image.Size(), 0.5, 0)!.Value);

        Assert.All(Enumerable.Range(0, layout.MarkerCount), m => Assert.True(reader.ReadsRight(frame, truth, m), $"marker {m}"));
        // A square over, each marker's place holds a black square or another marker; two squares over, another marker or
        // the skin beside the board.
        foreach (var shift in new[] { new Vec3(scene.Board.Spec.SquareMm, 0, 0), new Vec3(0, scene.Board.Spec.SquareMm, 0), new Vec3(2 * scene.Board.Spec.SquareMm, 0, 0) })
        {
            var wrong = Moved(truth, shift);
            Assert.All(Enumerable.Range(0, layout.MarkerCount), m => Assert.False(reader.ReadsRight(frame, wrong, m), $"marker {m} shifted by {shift}"));
        }
        // Samples outside the loaded region: not read.
        using var small = new GreyRegion();
        small.Load(image, new Rect(0, 0, 64, 64));
        Assert.False(reader.ReadsRight(small, truth, 0));
    }

    [Fact]
    public void Corner_follower_follows_a_swaying_board_from_the_last_frames_pose()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Sway, K720);
        var layout = new BoardLayout(scene.Board);
        var options = new BoardPoseOptions();
        using var follower = new CornerFollower(layout, K720, options, new PoseSolver(scene.Board, K720, options));
        for (var i = 1; i < 8; i++)
        {
            var t = i / 30.0;
            using var image = scene.Render(t, i);
            var followed = follower.Follow(image, scene.TruthAt((i - 1) / 30.0), i, 10);
            Assert.NotNull(followed);
            var (pose, detection) = followed.Value;
            Assert.True(pose.CameraFromHead.Translation.DistanceTo(scene.TruthAt(t).Translation) < 0.05, $"frame {i}");
            Assert.Equal(10, pose.MarkersSeen);
            Assert.Equal(Enumerable.Range(0, 10), detection.MarkerIds);
            Assert.Equal(Enumerable.Range(0, scene.Board.CornerCount), detection.CharucoIds);
            Assert.Equal(i, pose.CapturedTimestamp);
        }
    }

    [Fact]
    public void Corner_follower_refuses_a_start_a_square_off_and_fewer_markers_than_asked()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        var layout = new BoardLayout(scene.Board);
        var options = new BoardPoseOptions();
        using var follower = new CornerFollower(layout, K720, options, new PoseSolver(scene.Board, K720, options));
        using var image = scene.Render(0, 0);
        var truth = scene.TruthAt(0);

        Assert.NotNull(follower.Follow(image, truth, 0, 10));
        // The corners a square over are corners too; the markers there read differently.
        Assert.Null(follower.Follow(image, Moved(truth, new Vec3(scene.Board.Spec.SquareMm, 0, 0)), 0, 0));
        // Only ten markers on the board.
        Assert.Null(follower.Follow(image, truth, 0, 11));
        // The board behind the camera: nothing to follow.
        Assert.Null(follower.Follow(image, new RigidTransform(1, 0, 0, 0, 1, 0, 0, 0, 1, new Vec3(0, 0, -100)), 0, 0));
    }

    [Fact]
    public void Region_search_finds_the_markers_near_the_last_pose_and_the_corners_a_full_detection_finds()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        var layout = new BoardLayout(scene.Board);
        var options = new BoardPoseOptions();
        using var search = new RegionSearch(layout, K720, options);
        using var full = new FullFrameDetector(layout, K720, options);
        using var image = scene.Render(0, 0);
        var truth = scene.TruthAt(0);

        // The last pose 4 mm off (too far to follow the corners).
        var found = search.Search(image, Moved(truth, new Vec3(4, -3, 2)));
        Assert.NotNull(found);
        Assert.Equal(Enumerable.Range(0, 10), found.MarkerIds.Order());
        var reference = full.Detect(image);
        Assert.Equal(reference.CharucoIds.Order(), found.CharucoIds.Order());
        for (var i = 0; i < found.CharucoIds.Length; i++)
        {
            var r = reference.CharucoCorners[Array.IndexOf(reference.CharucoIds, found.CharucoIds[i])];
            Assert.True(found.CharucoCorners[i].DistanceTo(r) < 0.05, $"corner {found.CharucoIds[i]}: {found.CharucoCorners[i].DistanceTo(r):0.000} px from the full detection's");
        }

        // Where the last pose puts the board out of the picture, there is no region to search.
        Assert.Null(search.Search(image, new RigidTransform(1, 0, 0, 0, 1, 0, 0, 0, 1, new Vec3(0, 0, -100))));
        Assert.Null(search.Search(image, Moved(truth, new Vec3(1000, 0, 0))));
    }

    [Fact]
    public void Full_frame_detector_takes_a_whole_board_coarse_and_leaves_a_partly_hidden_one_to_the_fine_detection()
    {
        using var scene = new SyntheticScene(SyntheticScenario.Still, K720);
        var layout = new BoardLayout(scene.Board);
        using var full = new FullFrameDetector(layout, K720, new BoardPoseOptions());
        using var image = scene.Render(0, 0);

        var coarse = full.DetectCoarse(image);
        Assert.NotNull(coarse);
        Assert.Equal(Enumerable.Range(0, 10), coarse.MarkerIds.Order());
        Assert.Equal(scene.Board.CornerCount, coarse.CharucoIds.Length);
        var fine = full.Detect(image);
        Assert.Equal(10, fine.MarkerIds.Length);
        Assert.Equal(scene.Board.CornerCount, fine.CharucoIds.Length);
        // Both end in the same sub-pixel refinement at full resolution.
        for (var i = 0; i < coarse.CharucoIds.Length; i++)
        {
            var f = fine.CharucoCorners[Array.IndexOf(fine.CharucoIds, coarse.CharucoIds[i])];
            Assert.True(coarse.CharucoCorners[i].DistanceTo(f) < 0.05);
        }

        using var occluded = new SyntheticScene(SyntheticScenario.Occlusion, K720);
        using var hidden = occluded.Render(0.6, 0);
        Assert.Null(full.DetectCoarse(hidden));
        Assert.InRange(full.Detect(hidden).MarkerIds.Length, 4, 9);
    }

    [Fact]
    public void Pose_history_extrapolates_the_last_translation_and_no_further_than_three_frames()
    {
        var history = new PoseHistory();
        Assert.Null(history.Last);
        Assert.Throws<InvalidOperationException>(() => history.Extrapolate(0));

        static TrackedPose At(double xMm, long timestamp, int markers = 10) =>
            new(Moved(Facing100, new Vec3(xMm, 0, 0)), timestamp, 0.1, markers, 1);

        history.Remember(At(0, 100));
        Assert.Equal(Moved(Facing100, Vec3.Zero), history.Extrapolate(200)); // one pose: no speed yet
        history.Remember(At(1, 200, 9));
        Assert.Equal(9, history.LastMarkers);
        Assert.Equal(1, history.Last!.Value.Translation.X, 12);
        Assert.Equal(2, history.Extrapolate(300).Translation.X, 9);   // one interval on: one more mm
        Assert.Equal(1.5, history.Extrapolate(250).Translation.X, 9); // half an interval
        Assert.Equal(4, history.Extrapolate(500).Translation.X, 9);   // three intervals: still extrapolated
        Assert.Equal(1, history.Extrapolate(501).Translation.X, 12);  // beyond: the last pose as it is
        Assert.Equal(1, history.Extrapolate(200).Translation.X, 12);  // not after the last frame
        Assert.Equal(history.Last!.Value, history.Extrapolate(150));

        history.Forget();
        Assert.Null(history.Last);
        Assert.Equal(0, history.LastMarkers);
        history.Remember(At(5, 600));
        Assert.Equal(5, history.Extrapolate(700).Translation.X, 12); // the forgotten poses give no speed
    }

    [Fact]
    public void Sub_pixel_window_stays_inside_the_white_margin_and_the_scale_comes_from_the_marker_sides()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var spec = board.Spec; // 6 mm squares, 4.5 mm markers: a 0.75 mm margin
        Assert.Equal(7, SubPixCorners.HalfWindowPx(spec, 12.7));   // floor(0.75 × 12.7 × 0.8)
        Assert.Equal(2, SubPixCorners.HalfWindowPx(spec, 1));
        Assert.Equal(10, SubPixCorners.HalfWindowPx(spec, 100));
        Point2f[][] square = [[new(0, 0), new(45, 0), new(45, 45), new(0, 45)]];
        Assert.Equal(10, SubPixCorners.PxPerMm(spec, square), 9);
        Assert.Equal(0, SubPixCorners.PxPerMm(spec, []));
    }
}
