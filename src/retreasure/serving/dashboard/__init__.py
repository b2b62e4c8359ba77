"""Streamlit dashboards for leadership, marketing, operations, finance and data health."""
