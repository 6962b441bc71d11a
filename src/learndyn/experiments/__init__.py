"""Paper-figure recipes: one short declarative module per paper (parameters + runs + plot).

``goldt2019`` (teacher-student online SGD), ``montanari2025`` (DMFT), ``xiao2020`` (NTK depth theory).
"""
