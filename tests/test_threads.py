"""The CPU thread default: the free physical cores this process may use, shared between workers, at least one."""

import torch

from dpodiff import threads


def test_the_default_is_the_free_physical_cores_shared_by_the_workers(monkeypatch):
    monkeypatch.setattr(threads, "physical_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1: 3.4)  # another process keeps 3.4 cores busy
    assert threads.default_threads() == 5 and threads.default_threads(workers=2) == 2
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1: 12.0)
    assert threads.default_threads() == 1 and threads.default_threads(workers=4) == 1


def test_a_cgroup_quota_caps_the_cores_and_smt_siblings_count_once(monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "_cpus", lambda: list(range(64)))
    monkeypatch.setattr(threads, "_quota", lambda: 3)  # docker --cpus=3 on a machine that shows 64
    assert threads.physical_cores() == 3
    monkeypatch.setattr(threads, "_quota", lambda: None)
    real = threads.Path

    def topology(path):  # 4 logical CPUs, 2 cores with 2 SMT siblings each
        p = real(path)
        if "/topology" in str(p):
            cpu = int(str(p).split("/cpu/cpu")[1].split("/")[0])
            folder = tmp_path / f"cpu{cpu}"
            folder.mkdir(exist_ok=True)
            (folder / "physical_package_id").write_text("0")
            (folder / "core_id").write_text(str(cpu // 2))
            return folder
        return p

    monkeypatch.setattr(threads, "_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(threads, "Path", topology)
    assert threads.physical_cores() == 2


def test_use_threads_sets_torch_to_the_default_or_to_what_was_asked(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "default_threads", lambda workers=1: 3)
        assert threads.use_threads() == 3 and torch.get_num_threads() == 3
        assert threads.use_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
