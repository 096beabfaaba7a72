"""scripts/trtkit_steps/tftrt.py: the calibration data TF-TRT is given."""
import numpy as np
from engine_inputs import LSTM_INPUT


def test_tftrt_calibrates_on_a_calibration_folder_and_npy(tmp_path):
    """TF-TRT read --calib-data only as an .npz, and calibrated INT8 on the random reference inputs otherwise."""
    from trtkit_steps import tftrt
    np.save(tmp_path / "part1.npy", np.full((2, 11, 192), 3.0))
    np.save(tmp_path / "part2.npy", np.full((1, 11, 192), 4.0))
    for given in (tmp_path, tmp_path / "part1.npy"):
        feed = tftrt.calibration_feed({"calib_data": str(given)}, [LSTM_INPUT])
        assert len(feed) == 1 and feed[0].dtype == np.float32 and feed[0].min() == 3.0
    assert tftrt.calibration_feed({"calib_data": str(tmp_path)}, [LSTM_INPUT])[0].shape == (3, 11, 192)
